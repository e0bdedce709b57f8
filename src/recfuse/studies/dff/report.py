"""The DFF study's report: results table, layer-sweep plot, DFF weights and verdicts.

Aliases ("fusion-best" = the fusion layer chosen on validation, "fusion-last", ...) are resolved
here in memory. Every verdict comes from `recfuse.runs.study.verdict`: "holds" only with ≥ 3
seeds and a significant paired test (Holm-corrected within its principle) in the claimed
direction.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recfuse.atomic import atomic_path
from recfuse.runs.study import Comparison, Results, StudyFolder, Summary, Verdict, verdict

if TYPE_CHECKING:
    from recfuse.studies.dff.study import DFFConfig, Prepared

METRIC = "NDCG@10"


def aliases(results: Results, ds: str, prep: Prepared, replace_sweep: bool) -> dict[str, str]:
    """Alias -> arm name: the last layer and the layer chosen on validation, per kind."""
    from recfuse.studies.dff.study import best_layer

    last = prep.feats.n_layers - 1
    best_fusion = best_layer(results, ds, "fusion", prep.sweep)
    best_replace = best_layer(results, ds, "replace", prep.sweep) if replace_sweep else best_fusion
    return {
        "fusion-last": f"fusion-L{last}",
        "replace-last": f"replace-L{last}",
        "fusion-best": f"fusion-L{best_fusion}",
        "replace-best": f"replace-L{best_replace}",
    }


def _arm_rows(results: Results, ds: str) -> dict[str, dict[str, Any]]:
    """Per arm: kind, layer, seeds, valid / test mean, test std, Recall@10, ID table, seconds."""
    rows: dict[str, dict[str, Any]] = {}
    for f in results.cells:
        if f.cell.dataset != ds or f.cell.arm_name in rows:
            continue
        name = f.cell.arm_name
        cells = results.get(ds, name)
        tests = [c.result.metrics[METRIC] for c in cells]
        arm = f.cell.arm
        rows[name] = {
            "arm": name,
            "kind": arm.kind,
            "layer": arm.layer if arm.layer is not None else -1,
            # a point of the layer sweep: one layer, default (gate) fusion or replacement
            "single_layer": arm.source == "layer" and arm.mode == "gate",
            "seeds": len(cells),
            "valid_mean": float(np.mean([c.result.metrics[f"valid {METRIC}"] for c in cells])),
            "test_mean": float(np.mean(tests)),
            "test_std": float(np.std(tests, ddof=1)) if len(tests) > 1 else 0.0,
            "recall_mean": float(np.mean([c.result.metrics["Recall@10"] for c in cells])),
            "id_table": bool(cells[0].result.info["has_id_table"]),
            "seconds": float(np.mean([c.result.info["train_seconds"] for c in cells])),
            "epochs": float(np.mean([c.result.info["epochs"] for c in cells])),
        }
    return rows


def _delta(results: Results, ds: str, arm: str, ref: str) -> str:
    if arm == ref:
        return "—"
    test = results.compare(ds, arm, ref, METRIC).test
    star = "*" if test.t_pvalue < 0.05 else ""
    return f"{test.diff:+.4f} (p={test.t_pvalue:.2g}){star}"


def table_markdown(
    results: Results, ds: str, rows: dict[str, dict[str, Any]], alias: dict[str, str]
) -> list[str]:
    """The results table, one line per arm (aliases shown with what they stand for)."""
    shown = ["id", "replace-captions", "replace-last", "replace-best", "fusion-captions",
             "fusion-last", "fusion-best"]  # fmt: skip
    shown += [a for a in rows if a.startswith(("fusion-concat", "fusion-sum"))] + ["dff"]
    shown += sorted((a for a in rows if rows[a]["single_layer"]),
                    key=lambda a: (rows[a]["kind"] != "fusion", rows[a]["layer"]))  # fmt: skip
    lines = [
        f"| arm | layer | ID table | valid {METRIC} | test {METRIC} (mean ± std) | Recall@10 | "
        "vs ID only (Δ, paired t p, unadjusted) | vs best single layer (Δ, p) | epochs | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    best = alias["fusion-best"]
    for name in dict.fromkeys(shown):
        target = alias.get(name, name)
        if target not in rows:
            continue
        row = rows[target]
        label = name if name not in alias else f"{name} (= {target})"
        lines.append(
            f"| {label} | {'' if row['layer'] < 0 else int(row['layer'])} | "
            f"{'yes' if row['id_table'] else 'no'} | {row['valid_mean']:.4f} | "
            f"{row['test_mean']:.4f} ± {row['test_std']:.4f} | {row['recall_mean']:.4f} | "
            f"{_delta(results, ds, target, 'id')} | {_delta(results, ds, target, best)} | "
            f"{row['epochs']:.1f} | {row['seconds']:.0f} |"
        )
    return lines


def _family(
    results: Results, ds: str, claim: str, pairs: list[tuple[str, str]], alias: dict[str, str]
) -> list[Verdict]:
    """One verdict per (arm > reference) pair; p-values Holm-adjusted across the pairs."""
    resolved = [(alias.get(a, a), alias.get(b, b)) for a, b in pairs]
    comparisons: list[Comparison] = results.compare_pairs(ds, resolved, METRIC)
    out = []
    for (a, b), cmp in zip(pairs, comparisons, strict=True):
        named = f"{a} (= {alias[a]})" if a in alias else a
        ref = f"{b} (= {alias[b]})" if b in alias else b
        out.append(verdict(f"{ds} — {claim}: {named} > {ref}", cmp))
    return out


def verdicts(
    results: Results, ds: str, rows: dict[str, dict[str, Any]], alias: dict[str, str]
) -> tuple[list[Verdict], list[str]]:
    """Verdicts of the three principles and DFF; notes for what could not be tested."""
    out: list[Verdict] = []
    notes: list[str] = []
    if "replace-captions" in rows:
        pairs = [("replace-best", "replace-captions"), ("fusion-best", "fusion-captions")]
        out += _family(results, ds, "P1 hidden states beat captions", pairs, alias)
    else:
        notes.append("P1 (hidden states beat captions): not tested — captions not cached")
    pairs = [("fusion-best", "replace-best"), ("fusion-last", "replace-last")]
    if "fusion-captions" in rows:
        pairs.append(("fusion-captions", "replace-captions"))
    out += _family(results, ds, "P2 fusing with IDs beats replacing IDs", pairs, alias)
    # P3: the best and the worst sweep layer are both picked on validation, tested on test
    sweep = {a: r for a, r in rows.items() if r["kind"] == "fusion" and r["single_layer"]}
    if len(sweep) >= 2:
        best = max(sweep, key=lambda a: sweep[a]["valid_mean"])
        worst = min(sweep, key=lambda a: sweep[a]["valid_mean"])
        if best != worst:
            cmp = results.compare(ds, best, worst, METRIC)
            claim = f"{ds} — P3 layer usefulness varies: {best} > {worst} (chosen on validation)"
            out.append(verdict(claim, cmp))
    else:
        notes.append("P3 (layer usefulness varies): not tested — fewer than two sweep layers")
    out += _family(results, ds, "DFF beats", [("dff", "fusion-best"), ("dff", "id")], alias)
    return out, notes


def plot_sweep(
    path: Path, rows: dict[str, dict[str, Any]], lines: dict[str, float], title: str
) -> None:
    """Layer-sweep plot: test NDCG@10 (mean ± std over seeds) of fusion and replacement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = pd.DataFrame([r for r in rows.values() if r["single_layer"]])
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind, style in (("fusion", "o-"), ("replace", "s--")):
        part = sweep[sweep["kind"] == kind].sort_values("layer") if len(sweep) else sweep
        if len(part):
            ax.errorbar(part["layer"], part["test_mean"], yerr=part["test_std"], fmt=style,
                        capsize=3, label=f"{kind} (single layer)")  # fmt: skip
    for i, (label, value) in enumerate(lines.items()):
        ax.axhline(value, linestyle=":", color=f"C{i + 2}", label=label)
    ax.set_xlabel("layer (0 = embedding output)")
    ax.set_ylabel(f"test {METRIC} (error bars: std over seeds)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def dataset_report(
    results: Results, folder: StudyFolder, config: DFFConfig, ds: str, prep: Prepared
) -> Summary:
    """Markdown, verdicts, the sweep plot and the DFF layer weights of one dataset."""
    rows = _arm_rows(results, ds)
    alias = aliases(results, ds, prep, config.replace_sweep)
    t = config.train
    cap = "no time cap" if t.max_seconds is None else f"<= {t.max_seconds:.0f} s"
    lines = [
        f"### DFF study: {ds}, {config.model}, {config.backbone}",
        "",
        f"{prep.users_note}; {prep.items_note}; split leave_one_out (last item test, "
        f"second-to-last valid), seed 0; seeds {config.seeds}; budget per model: <= {t.epochs} "
        f"epochs, {cap}, patience {t.patience}, dim {config.dim}, max_len {config.max_len}; "
        f"features: {config.pooling}-pooled hidden states, standardized per dimension. "
        f"{prep.feats.caption_note}.",
        "",
        *table_markdown(results, ds, rows, alias),
    ]
    weights = [c.result.info["report"]["layer_weights"] for c in results.get(ds, "dff")]
    mean_weights = {k: float(np.mean([w[k] for w in weights])) for k in weights[0]}
    lines += ["", "DFF layer weights (softmax, mean over seeds): "
              + ", ".join(f"{k} {v:.3f}" for k, v in mean_weights.items()), ""]  # fmt: skip
    found, notes = verdicts(results, ds, rows, alias)
    lines += [f"- {n}" for n in notes]
    ref = {"ID only": rows["id"]["test_mean"], "DFF": rows["dff"]["test_mean"]}
    if "fusion-captions" in rows:
        ref["fusion-captions"] = rows["fusion-captions"]["test_mean"]
    plot = folder.path / f"layer_sweep_{ds}.png"
    plot_sweep(plot, rows, ref, f"{ds} {config.model} {config.backbone}")
    lines += ["", f"Layer sweep plot: {plot}", ""]
    data = {"layer_weights": {"per_seed": weights, "mean": mean_weights}, "aliases": alias,
            "rows": list(rows.values()), "notes": notes}  # fmt: skip
    return Summary("\n".join(lines), found, [str(plot)], data)
