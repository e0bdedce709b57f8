"""`recfuse demo` / `make demo`: the DFF study's ``demo`` preset, with a one-screen summary.

It answers the DFF question on real data in about 15 minutes from a cold cache on 2 cores:
Amazon-Scientific with every user, MiniLM's layers extracted on the spot, ID only / fusion /
replacement / DFF trained to early stopping on validation (no wall-clock cap), 3 seeds, paired
tests with Holm correction, the verdicts and the layer-sweep plot. The whole report goes to the
study folder (``results.md``); the terminal gets the table, the verdicts, where the report and the
plot are and the wall time. Captions are not part of it (captioning every item with SmolLM2 takes
longer than the demo on this CPU), so principle 1 says "not tested" unless they are cached.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from recfuse.runs.study import Summary
from recfuse.studies.dff.study import DFFConfig, DFFStudy


def demo_config(overrides: list[str] | None = None) -> DFFConfig:
    """The resolved config `make demo` runs: the DFF study's ``demo`` preset (+ ``overrides``)."""
    from recfuse.runs.study import load_study_config

    config: DFFConfig = load_study_config(DFFStudy, preset="demo", overrides=overrides)
    return config


def run_demo(overrides: list[str] | None = None) -> Summary:
    """Run the demo preset through the study skeleton and print the one-screen summary."""
    import torch

    from recfuse.runs.study import default_folder, run_study

    # the main process extracts the features; the study's workers set their own threads
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    config = demo_config(overrides)
    print(_header(config), flush=True)
    started = time.perf_counter()
    study = DFFStudy(echo_report=False)
    summary = run_study(study, config)
    seconds = time.perf_counter() - started
    print(demo_summary(summary, default_folder(study, config), seconds), flush=True)
    return summary


def _header(config: DFFConfig) -> str:
    t = config.train
    users = "every user" if config.max_users is None else f"{config.max_users} sampled users"
    return (
        f"recfuse demo: the DFF study (preset 'demo') on {', '.join(config.datasets)} with "
        f"{config.model} + {config.backbone} (dim {config.dim}), {users}; arms: ID only, fusion "
        f"over the layer sweep (stride {config.sweep_stride} from layer 0, and the last), "
        f"replacement at the last and the validation-best layer, DFF over the sweep; "
        f"{len(config.seeds)} seeds; lr {t.lr:g}; each model "
        f"trained to early stopping on validation NDCG@10 (patience {t.patience}, at most "
        f"{t.epochs} epochs, no time cap); {config.workers} workers x {config.threads} thread."
    )


def demo_summary(summary: Summary, folder: Path, seconds: float) -> str:
    """One screen: per dataset the arms' epochs and test NDCG@10, then the verdicts, the report
    and plot paths and the wall time. Reads `Summary.data` as `DFFStudy.summarize` fills it."""
    lines = ["", "=" * 100, "DFF demo summary", "=" * 100]
    for ds, data in summary.data.items():
        lines += _arm_table(ds, data)
    lines += ["", "Verdicts (paired t-test over users, Holm within each principle; 'holds' needs "
              ">= 3 seeds and p < 0.05 in the claimed direction):"]  # fmt: skip
    for v in summary.verdicts:
        lines += [f"  [{v.status}] {v.claim}", f"      {v.evidence}"]
    lines += [f"  {note}" for data in summary.data.values() for note in data.get("notes", [])]
    lines += [
        "",
        f"report: {folder / 'results.md'} (full table, deltas, DFF layer weights)",
        *(f"plot:   {plot}" for plot in summary.plots),
        f"wall time: {seconds:.0f} s ({seconds / 60:.1f} min)",
    ]
    return "\n".join(lines)


def _arm_table(ds: str, data: dict[str, Any]) -> list[str]:
    """The arms of one dataset: epochs run, validation and test NDCG@10 (mean ± std)."""
    named = {arm: alias for alias, arm in data.get("aliases", {}).items() if "best" in alias}
    lines = [
        "",
        f"{ds}: test NDCG@10 (full ranking, seen items masked), mean ± std over seeds",
        f"  {'arm':<26} {'seeds':>5} {'epochs':>7} {'valid':>7} {'test NDCG@10':>17} {'R@10':>7}",
    ]
    for row in data["rows"]:
        label = row["arm"] + (f" ({named[row['arm']]})" if row["arm"] in named else "")
        lines.append(
            f"  {label:<26} {row['seeds']:>5} {row['epochs']:>7.1f} {row['valid_mean']:>7.4f} "
            f"{row['test_mean']:>8.4f} ± {row['test_std']:.4f} {row['recall_mean']:>7.4f}"
        )
    return lines
