"""Tables, paired tests, verdicts and the gain-by-popularity plot of the I2I study."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from recfuse.evaluation.significance import holm, paired_arrays
from recfuse.runs.study import Comparison, Results, StudyFolder, Summary, Verdict, verdict
from recfuse.studies.i2i.data import DATA_ARMS
from recfuse.studies.i2i.evaluate import pop_bucket

TABLE = ["Recall@10", "NDCG@10", "Recall@50", "tail Recall@10", "head Recall@10",
         "valid Recall@10"]  # fmt: skip
#: claim -> (data arm, reference data arm, metric)
CLAIMS: dict[str, tuple[str, str, str]] = {
    "generator raises Recall@10 over the original data": ("gen", "original", "Recall@10"),
    "generator raises tail Recall@10 over the original data": ("gen", "original", "tail Recall@10"),
    "generator beats as many random synthetic edges": ("gen", "rand-gen", "Recall@10"),
    "discriminator raises Recall@10 over the original data": ("disc", "original", "Recall@10"),
    "discriminator beats as many random drops": ("disc", "rand-drop", "Recall@10"),
    "discriminator beats loss-based pruning": ("disc", "loss-prune", "Recall@10"),
    "generator + discriminator raise Recall@10 over the original data": (
        "gen+disc", "original", "Recall@10"),
    "generator + discriminator raise tail Recall@10 over the original data": (
        "gen+disc", "original", "tail Recall@10"),
    "down-weighting raises Recall@10 over the original data": (
        "disc-weight", "original", "Recall@10"),
    "down-weighting beats dropping the same edges": ("disc-weight", "disc", "Recall@10"),
}  # fmt: skip


def compare_nan(results: Results, ds: str, arm: str, ref: str, metric: str) -> Comparison:
    """`Results.compare` over the users where both arms have the metric (the tail metric is
    NaN on head targets)."""
    seeds = sorted({f.cell.seed for f in results.get(ds, arm)}
                   & {f.cell.seed for f in results.get(ds, ref)})  # fmt: skip
    a, b = results.per_user(ds, arm, seeds), results.per_user(ds, ref, seeds)
    joined = a[["user", metric]].merge(b[["user", metric]], on="user", suffixes=("_a", "_b"))
    joined = joined.dropna()
    test = paired_arrays(joined[f"{metric}_a"].to_numpy(), joined[f"{metric}_b"].to_numpy(),
                         metric)  # fmt: skip
    return Comparison(ds, arm, ref, metric, tuple(seeds), test, test.t_pvalue)


def claim_verdicts(results: Results, ds: str, models: list[str]) -> list[Verdict]:
    """One verdict per (claim, model); Holm across the models of a claim."""
    arms = set(results.frame()["arm"])
    out = []
    for claim, (arm, ref, metric) in CLAIMS.items():
        pairs = [(f"{m}:{arm}", f"{m}:{ref}") for m in models
                 if f"{m}:{arm}" in arms and f"{m}:{ref}" in arms]  # fmt: skip
        raw = [compare_nan(results, ds, a, r, metric) for a, r in pairs]
        adjusted = holm([c.test.t_pvalue for c in raw]) if raw else []
        for c, p in zip(raw, adjusted, strict=True):
            model = c.arm.split(":")[0]
            out.append(verdict(f"{ds} {model}: {claim}", dataclasses.replace(c, p=p)))
    return out


def gain_by_bucket(results: Results, ds: str, models: list[str], arms: list[str]) -> pd.DataFrame:
    """Mean Recall@10 difference vs the original data per target-popularity bucket."""
    rows = []
    for model in models:
        base_arm = f"{model}:original"
        if not results.get(ds, base_arm):
            continue
        base = results.per_user(ds, base_arm)
        for arm in arms:
            if not results.get(ds, f"{model}:{arm}"):
                continue
            other = results.per_user(ds, f"{model}:{arm}")
            j = base.merge(other, on="user", suffixes=("_b", "_a"))
            j["bucket"] = pop_bucket(j["target_pop_b"].to_numpy())
            j["gain"] = j["Recall@10_a"] - j["Recall@10_b"]
            for bucket, g in j.groupby("bucket", sort=False):
                rows.append({"model": model, "arm": arm, "bucket": bucket, "users": len(g),
                             "gain": float(g["gain"].mean())})  # fmt: skip
    return pd.DataFrame(rows)


def gain_markdown(gains: pd.DataFrame) -> str:
    """Model × arm rows, one column per popularity bucket (users in the header)."""
    order = sorted(dict.fromkeys(gains["bucket"]), key=lambda b: int(b.split("-")[0]))
    users = gains.groupby("bucket")["users"].max()
    head = "| model | arm | " + " | ".join(f"{b} ({users[b]} users)" for b in order) + " |"
    lines = [head, "|" + "---|" * (len(order) + 2)]
    for (model, arm), g in gains.groupby(["model", "arm"], sort=False):
        by = g.set_index("bucket")["gain"]
        cells = [f"{by[b]:+.4f}" if b in by else "–" for b in order]
        lines.append(f"| {model} | {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_gain(gains: pd.DataFrame, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recfuse import atomic

    models = list(dict.fromkeys(gains["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models) + 1.5, 3.6), squeeze=False)
    order = sorted(dict.fromkeys(gains["bucket"]), key=lambda b: int(b.split("-")[0]))
    for ax, model in zip(axes[0], models, strict=True):
        part = gains[gains["model"] == model]
        for arm, g in part.groupby("arm", sort=False):
            g = g.set_index("bucket").reindex(order)
            ax.plot(range(len(order)), g["gain"], marker="o", label=arm)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xticks(range(len(order)), order, fontsize=8)
        ax.set_xlabel("target's training interactions")
        ax.set_title(model, fontsize=10)
    axes[0][0].set_ylabel("Recall@10 − original")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def summarize(results: Results, folder: StudyFolder, extra: dict[str, Any]) -> Summary:
    frame = results.frame()
    lines = ["### LLM-I2I: refined data for I2I models (leave-one-out, trigger = last item, "
             "full ranking)", "", results.markdown(TABLE)]  # fmt: skip
    verdicts: list[Verdict] = []
    plots: list[str] = []
    for ds in dict.fromkeys(frame["dataset"]):
        arms = [str(a) for a in dict.fromkeys(frame[frame["dataset"] == ds]["arm"])]
        models = list(dict.fromkeys(a.split(":")[0] for a in arms))
        verdicts += claim_verdicts(results, ds, models)
        data_arms = [a for a in DATA_ARMS if a != "original"
                     and any(x.endswith(f":{a}") for x in arms)]  # fmt: skip
        gains = gain_by_bucket(results, ds, models, data_arms)
        if not gains.empty:
            path = plot_gain(gains, folder.path / f"gain_by_popularity_{ds}.png",
                             f"{ds}: Recall@10 gain over the original data by target popularity")  # fmt: skip
            plots.append(str(path))
            lines += ["", f"Gain in Recall@10 over the original data by target popularity "
                      f"(training interactions of the target; {ds}):", "", gain_markdown(gains)]  # fmt: skip
    lines += ["", "Verdicts (below): paired t-test over users, Holm across the models of a claim, "
              ">= 3 seeds."]  # fmt: skip
    lines += ["", "### Refinement cost and the discriminator's labelled check", ""]
    lines += [_cost_line(key, value) for key, value in extra.items()]
    text = "\n".join(lines) + "\n"
    print(text + "\n".join(f"- {v.line()}" for v in verdicts))
    print(f"study folder: {folder.path}")
    return Summary(text, verdicts, plots, {"refinement": extra})


def _cost_line(key: str, value: dict[str, Any]) -> str:
    cost = value["cost"]
    checks = "; ".join(f"drop {f}: AUC {c['auc']:.3f}, precision {c['precision']:.3f}, "
                       f"recall {c['recall']:.3f}" for f, c in value["checks"].items())  # fmt: skip
    own = value.get("teacher_check") or {}
    if own:
        checks += (f"; the teacher's own check (keep if P(yes) >= 0.5): AUC {own['auc']:.3f}, "
                   f"precision {own['precision']:.3f}, recall {own['recall']:.3f}")  # fmt: skip
    judge = cost.get("discriminator", cost["teacher"])
    return (f"- {key}: teacher {cost['teacher']} (edges judged by {judge}), "
            f"{cost['teacher_calls']} teacher calls, "
            f"generator {cost['generator_seconds']} s, discriminator "
            f"{cost['discriminator_seconds']} s, {cost['synthetic_edges']} synthetic edges for "
            f"{cost['tail_items']} tail items, {cost['ledger_entries']} ledger entries, "
            f"{cost['gate_denied']} denied; labelled check ({checks})")  # fmt: skip
