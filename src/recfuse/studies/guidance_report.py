"""Tables, plots and verdicts of the guidance study (teacher → gate → arms → slices → cost)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recfuse.guidance import accuracy_by, reliability_curve
from recfuse.runs.study import Results, StudyFolder, Summary, Verdict, bar_plot, mean_std, verdict

GAIN_METRIC = "NDCG@10"


def _md(frame: pd.DataFrame, digits: int = 4) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        cells = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def teacher_section(ds: str, state: Any) -> list[str]:
    t = state.prepared.table
    info = state.prepared.info
    out = [f"### Teacher on {ds}: pairwise accuracy against training-period truth", ""]
    overall = pd.DataFrame(
        [("all", len(t), float(t["right"].mean()))]
        + [(f"negative {k}", len(p), float(p["right"].mean())) for k, p in t.groupby("kind")],
        columns=["bin", "pairs", "teacher_accuracy"],
    )
    parts = [overall] + [accuracy_by(t, c) for c in ("hist_len", "pop_i", "pop_j")]
    out += [_md(pd.concat(parts, ignore_index=True)), ""]
    bias = info.get("position_bias")
    out.append(
        f"Users {t['user'].nunique()}, pairs {len(t)}; position bias (mean P(first slot) − 0.5): "
        + ("n/a (order-free teacher)" if bias is None else f"{bias:+.4f}")
        + f"; teacher cost: {info.get('teacher_cost')}; rerun: {info.get('rerun_teacher_cost', 'n/a')}."
    )
    return [*out, ""]


def gate_section(ds: str, state: Any) -> list[str]:
    from sklearn.metrics import roc_auc_score

    t = state.prepared.table
    g, y = t["g"].to_numpy(), t["right"].to_numpy()
    curve = reliability_curve(g, y)
    auc = roc_auc_score(y, g) if len(np.unique(y)) == 2 else float("nan")
    out = [f"### Gate on {ds}: reliability curve (cross-fitted over users)", "", _md(curve), ""]
    out.append(
        f"Coverage (mean g) {g.mean():.3f}; share with g > 0.5: {(g > 0.5).mean():.3f}; "
        f"ECE {curve.attrs['ece']:.4f}; AUC of g for 'teacher right' {auc:.3f}; "
        f"weights (standardized features): {state.prepared.info.get('gate_weights')}."
    )
    return [*out, ""]


def tests_section(
    final: Results, ds: str, arms: list[str]
) -> tuple[list[str], dict[tuple[str, str, str], Any]]:
    from recfuse.studies.guidance import SLICES, sliced

    out = [f"### Paired tests on {ds} (per-user, seeds averaged, Holm across arms)", ""]
    comps: dict[tuple[str, str, str], Any] = {}
    for s in SLICES:
        part = sliced(final, s)
        plan = [("none", [a for a in arms if a != "none"])]
        plan += [("global_kd", [a for a in ("always", "selective") if a in arms])]
        plan += [("random", ["selective"] if "selective" in arms else [])]
        for ref, others in plan:
            if ref not in arms or not others:
                continue
            for c in part.compare_all(ds, others, ref, GAIN_METRIC):
                comps[(s, c.arm, ref)] = c
                out.append(f"- [{s}] {c.line()}")
    return [*out, ""], comps


def cost_section(final: Results, ds: str) -> tuple[list[str], pd.DataFrame]:
    frame = final.frame()
    frame = frame[frame["dataset"] == ds]
    cols = ["pair_acc", "coverage", "epochs", "train_seconds", "score_seconds", "lam"]
    agg = frame.groupby("arm", sort=False)[cols].agg(["mean", "std"]).fillna(0.0)
    rows = [
        [arm] + [mean_std(agg.loc[arm, (c, "mean")], agg.loc[arm, (c, "std")], 3) for c in cols]
        for arm in agg.index
    ]
    table = pd.DataFrame(rows, columns=["arm", *cols])
    out = [f"### Per arm on {ds}: pair accuracy after training, coverage, cost", "", _md(table)]
    return [*out, ""], agg


def gain_plot(final: Results, ds: str, path: Any) -> None:
    """Mean over seeds of (arm − none) NDCG@10 per slice, one bar group per slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recfuse import atomic

    frame = final.frame()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    gain_bars(ax, frame[frame["dataset"] == ds])
    ax.set_title(f"{ds}: gain by slice (error bars: std over seeds)", fontsize=10)
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def gain_bars(ax: Any, frame: pd.DataFrame) -> None:
    """Bars of (arm − none) NDCG@10 per slice on ``ax``; ``frame``: one row per (arm, seed)
    of one dataset, arms named by kind, with the slice metric columns."""
    from recfuse.studies.guidance import SLICES

    base = frame[frame["arm"] == "none"].set_index("seed")
    arms = [a for a in dict.fromkeys(frame["arm"]) if a != "none"]
    width = 0.8 / max(len(arms), 1)
    for k, arm in enumerate(arms):
        part = frame[frame["arm"] == arm].set_index("seed")
        means, stds = [], []
        for s in SLICES:
            col = GAIN_METRIC if s == "all" else f"{GAIN_METRIC} {s}"
            d = (part[col] - base[col]).dropna()
            means.append(d.mean())
            stds.append(d.std(ddof=1) if len(d) > 1 else 0.0)
        x = np.arange(len(SLICES)) + (k - (len(arms) - 1) / 2) * width
        ax.bar(x, means, width, yerr=stds, capsize=2, label=arm)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(SLICES)), SLICES)
    ax.set_ylabel(f"{GAIN_METRIC} gain vs none")


def _verdicts(ds: str, comps: dict[tuple[str, str, str], Any], agg: pd.DataFrame) -> list[Verdict]:
    out = []
    claims = [
        (("all", "selective", "none"), "overall gain: selective > no guidance"),
        (("cold", "selective", "none"), "cold-start gain: selective > no guidance on cold users"),
        (("tail", "selective", "none"), "long-tail gain: selective > no guidance on tail targets"),
        (("all", "selective", "global_kd"), "selective > global KD"),
        (("all", "selective", "random"), "the learned gate beats a random gate"),
    ]
    for key, claim in claims:
        if key in comps:
            out.append(verdict(f"{ds}: {claim}", comps[key]))
    if "none" in agg.index and "selective" in agg.index:
        a, b = (
            agg.loc["selective", ("score_seconds", "mean")],
            agg.loc["none", ("score_seconds", "mean")],
        )
        ok = a <= 1.25 * b
        out.append(
            Verdict(
                f"{ds}: no inference cost",
                "holds" if ok else "does not hold",
                f"scoring every test user: {a:.4f} s with guidance vs {b:.4f} s without "
                "(best of 3, mean over seeds; holds within 25%: the guided classes inherit the backbone's "
                "score() unchanged, the loss is training-only)",
            )
        )
    return out


def report(study: Any, results: Results, folder: StudyFolder) -> Summary:
    from recfuse.studies.guidance import METRICS, SLICES, final_results

    final = final_results(results, study.config_)
    lines: list[str] = [
        f"# Guidance study ({study.config_.backbone}, teacher {study.config_.teacher})",
        "",
    ]
    verdicts: list[Verdict] = []
    plots: list[str] = []
    for ds, state in study.state.items():
        lines += teacher_section(ds, state) + gate_section(ds, state)
        names = [m if s == "all" else f"{m} {s}" for s in SLICES for m in METRICS]
        sub = Results([f for f in final.cells if f.cell.dataset == ds])
        lines += [
            f"### Test metrics on {ds} (full ranking, leave-one-out)",
            "",
            sub.markdown(names),
        ]
        lines.append(
            f"Cold users: test-stage history <= {state.cold_max} items; tail = bottom 80% popularity.\n"
        )
        arms = [a for a in study.config_.arms if sub.get(ds, a)]
        tests, comps = tests_section(sub, ds, arms)
        cost, agg = cost_section(sub, ds)
        lines += tests + cost
        verdicts += _verdicts(ds, comps, agg)
        gp = folder.path / f"gain_by_slice_{ds}.png"
        gain_plot(sub, ds, gp)
        bp = bar_plot(
            sub.table([GAIN_METRIC]), GAIN_METRIC, folder.path / f"ndcg_{ds}.png", "guidance"
        )
        plots += [str(gp), str(bp)]
    return Summary("\n".join(lines), verdicts, plots, {"folder": str(folder.path)})
