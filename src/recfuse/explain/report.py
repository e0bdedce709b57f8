"""The XAI study's results: model quality first, then the curves, the verdicts, the agreement."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recfuse import atomic
from recfuse.explain.rubric import METRICS, PANEL, spearman
from recfuse.runs.folder import metrics_markdown
from recfuse.runs.study import Results, StudyFolder, Summary

CHECKS = ("specificity", "groundedness", "conciseness", "cost")


def round_table(results: Results, rounds: int) -> pd.DataFrame:
    """Per round: panel grade mean ± std over seeds and the mean of each deterministic check."""
    frame = results.frame()
    rows = []
    for r in range(rounds + 1):
        panel = frame[f"r{r} panel"]
        row = {
            "round": r,
            "panel mean": panel.mean(),
            "panel std": panel.std(ddof=1) if len(panel) > 1 else 0.0,
        }
        row.update({c: frame[f"r{r} {c}"].mean() for c in CHECKS})
        row["words"] = frame[f"r{r} words"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def metric_curves(results: Results, rounds: int) -> pd.DataFrame:
    """Mean grade per (round, metric) over seeds and judges: [rounds + 1, 7]."""
    out = {}
    for m in METRICS:
        values = []
        for r in range(rounds + 1):
            per_seed = [
                _units(f)
                .set_index("user")
                .loc[[f"{m}|{j}" for j in range(len(PANEL))], f"r{r}"]
                .mean()
                for f in results.cells
            ]
            values.append(float(np.mean(per_seed)))
        out[m] = values
    return pd.DataFrame(out)


def _units(finished: Any) -> pd.DataFrame:
    frame = finished.result.per_user
    assert frame is not None, "an XAI cell always stores its per-unit grades"
    return frame


def plot_curves(curves: pd.DataFrame, table: pd.DataFrame, path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    rounds = np.arange(len(curves))
    for m in curves.columns:
        axes[0].plot(rounds, curves[m], marker="o", markersize=3, label=m)
    mean, std = table["panel mean"].to_numpy(), table["panel std"].to_numpy()
    axes[0].plot(rounds, mean, color="black", linewidth=2.5, label="mean of 7")
    axes[0].fill_between(rounds, mean - std, mean + std, color="black", alpha=0.12)
    axes[0].set(xlabel="round", ylabel="judge panel grade (1-7)", title="LLM judge panel")
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for c in CHECKS:
        axes[1].plot(rounds, table[c], marker="o", markersize=3, label=c)
    axes[1].set(xlabel="round", ylabel="score (0-1)", title="deterministic checks (seed mean)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(
        "Explanation quality by round (band: std of the 7-metric mean over seeds)", fontsize=10
    )
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def xai_summary(results: Results, folder: StudyFolder, state: dict[str, Any]) -> Summary:
    from recfuse.studies.xai import claims

    rounds = max(
        int(k[1:].split()[0])
        for k in results.frame().columns
        if k.startswith("r") and k.endswith(" panel")
    )
    table = round_table(results, rounds)
    curves = metric_curves(results, rounds)
    plot_curves(curves, table, folder.path / "xai_curves.png")
    verdicts, peak = claims(results, results.cells[0].cell.dataset, rounds, state["patience"])
    frame = results.frame()
    panel = [frame[f"r{r} panel"].iloc[i] for i in range(len(frame)) for r in range(rounds + 1)]
    det = [
        np.mean([frame[f"r{r} {c}"].iloc[i] for c in CHECKS])
        for i in range(len(frame))
        for r in range(rounds + 1)
    ]
    rho = spearman(panel, det)
    chosen = [int(f.result.info["chosen"]) for f in results.cells]
    validation = pd.DataFrame(state["validation"])
    md = [
        "# Agentic XAI on Las Rosas corn",
        "",
        "## The yield model (before any explanation)",
        "",
        metrics_markdown(validation.to_dict("records"), digits=3),
        "",
        "Mean |SHAP| (q/ha): " + ", ".join(f"{k} {v:.2f}" for k, v in state["shap"].items()),
        "",
        "## The advice: profit-optimal N per zone (bootstrap 90% band over spatial blocks)",
        "",
        metrics_markdown(state["profit"].to_dict("records"), digits=1),
        "",
        "## Quality by round",
        "",
        metrics_markdown(table.to_dict("records"), digits=3),
        "",
        f"Seed-mean panel curve peaks at round {peak}; early stopping (patience) chose rounds {chosen}.",
        f"Agreement of the judge panel with the deterministic checks (Spearman over every "
        f"explanation): {rho:.3f}.",
        "",
        "![curves](xai_curves.png)",
    ]
    data = {"peak": peak, "chosen": chosen, "spearman": rho, "curves": curves.to_dict("list")}
    return Summary("\n".join(md) + "\n", verdicts, ["xai_curves.png"], data)
