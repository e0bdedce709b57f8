"""Baselines to early stopping, several seeds; the README's baseline table is built from the results.

Runs `recfuse study baselines` (leave-one-out, full ranking, early stopping on validation, no
time cap) for each dataset into ``runs/baselines-bench-<dataset>`` (resumable: finished cells are
kept), then merges one row per (dataset, model, seed) into ``benchmarks/results/baselines.json``
— a row measured again replaces the old one — and rewrites docs/results/baselines.md from every
committed row, with epochs, fit time, threads and load. Run it through the heavy queue:

    ../shared/tools/heavy --threads 2 -- python benchmarks/baselines.py \
        --datasets ml-100k amazon-scientific --models BPR SASRec-sampled --seeds 3 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from recfuse.atomic import write_json, write_text
from recfuse.provenance import git_commit
from recfuse.runs.study import mean_std, span
from recfuse.studies.baselines import MODELS
from recfuse.studies.cli import run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "baselines.json"
TABLE = ROOT / "docs" / "results" / "baselines.md"
KEY = ("dataset", "model", "seed")
DATASETS = ("ml-100k", "amazon-scientific", "amazon-office", "microlens-50k")

#: converged SASRec/GRU4Rec runs made with benchmarks/sasrec_windows.py (the same model classes,
#: early stopping with patience 10), shown in the table beside the study's own rows
WINDOW_RUNS = {
    ("ml-100k", "SASRec"): "sasrec_ml100k_masked_sliding_s*.json",
    ("ml-100k", "GRU4Rec"): "gru4rec_ml100k_last_s*.json",
    ("amazon-scientific", "GRU4Rec"): "gru4rec_amazon_last_s*.json",
}


def run_dataset(dataset: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the study on one dataset; one row per finished cell."""
    folder = Path(args.out) / f"baselines-bench-{dataset}"
    load_before = os.getloadavg()[0]
    sets = [
        f"folder={folder}",
        f"datasets={json.dumps([dataset])}",
        f"models={json.dumps(args.models)}",
        f"seeds={json.dumps(list(range(args.seeds)))}",
        f"workers={args.workers}",
        f"threads={args.threads}",
    ]
    run("recfuse.studies.baselines:BaselinesStudy", None, None, sets, {})
    cells = json.loads((folder / "results.json").read_text(encoding="utf-8"))["cells"]
    common = {
        "threads": args.threads,
        "workers": args.workers,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d"),
        "commit": git_commit(),
    }
    return [
        {
            "dataset": c["dataset"],
            "model": c["arm"],
            "seed": int(c["seed"]),
            "NDCG@10": c["NDCG@10"],
            "Recall@10": c["Recall@10"],
            "valid NDCG@10": c["valid NDCG@10"],
            "epochs": None if pd.isna(c.get("epochs")) else int(c["epochs"]),
            "fit s": c["fit_seconds"],
            **common,
        }
        for c in cells
    ]


def window_rows() -> list[dict[str, Any]]:
    """One row per seed of the `WINDOW_RUNS` files (load: the 1-minute average at their end)."""
    rows = []
    for (dataset, model), pattern in WINDOW_RUNS.items():
        for path in sorted((ROOT / "benchmarks" / "results").glob(pattern)):
            blob = json.loads(path.read_text(encoding="utf-8"))
            for run_ in blob["runs"]:
                rows.append(
                    {
                        "dataset": dataset,
                        "model": f"{model} ({blob['args']['windows']} windows)",
                        "seed": run_["seed"],
                        "NDCG@10": run_["test NDCG@10"],
                        "Recall@10": run_["test Recall@10"],
                        "epochs": run_["epochs"],
                        "fit s": run_["train s"],
                        "threads": blob["threads"],
                        "workers": "–",
                        "load_before": float("nan"),
                        "load_after": blob["load_after"][0],
                        "date": f"`{pattern}`",
                    }
                )
    return rows


def merge(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` with every row that ``new`` measured again replaced."""
    rows = {tuple(r[k] for k in KEY): r for r in old}
    rows.update({tuple(r[k] for k in KEY): r for r in new})
    return sorted(rows.values(), key=lambda r: (r["dataset"], MODELS.index(r["model"]), r["seed"]))


def _mean_std(values: pd.Series) -> str:
    if len(values) < 2:
        return f"{values.mean():.4f}"
    return mean_std(values.mean(), values.std(ddof=1))


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per dataset and model, mean ± std over seeds."""
    frame = pd.DataFrame(rows)
    frame["order"] = [MODELS.index(m.split(" (")[0]) for m in frame["model"]]
    frame = frame.sort_values(["dataset", "order", "model"], kind="stable")
    lines = [
        "| dataset | model | seeds | NDCG@10 | Recall@10 | epochs | fit s | threads × workers "
        "| load | measured |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (ds, model), g in frame.groupby(["dataset", "model"], sort=False):
        ndcg, rec = g["NDCG@10"], g["Recall@10"]
        lines.append(
            f"| {ds} | {model} | {len(g)} | {_mean_std(ndcg)} | {_mean_std(rec)} "
            f"| {span(g['epochs'])} | {span(g['fit s'])} | {g['threads'].iloc[0]} × "
            f"{g['workers'].iloc[0]} | {span(g['load_before'], 1)} → {span(g['load_after'], 1)} "
            f"| {', '.join(sorted(set(g['date'])))} |"
        )
    return "\n".join(lines)


def missing_rows(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(dataset, model) pairs of the four datasets with no row."""
    have = {(r["dataset"], r["model"].split(" (")[0]) for r in rows}
    return [(d, m) for d in DATASETS for m in MODELS if (d, m) not in have]


def write_table(rows: list[dict[str, Any]]) -> None:
    intro = (
        "# Baselines: leave-one-out, full ranking over all items\n\n"
        "Generated by `benchmarks/baselines.py` from `benchmarks/results/baselines.json`: every "
        "neural model trained to early stopping on validation NDCG@10 (patience 10, at most 200 "
        "epochs, no time cap), test metrics of the best-validation weights, mean ± std over "
        "seeds. Each row says when it ran, on how many threads per worker × workers, and the "
        "load average before → after its dataset's job. Rows named with their windows are "
        "`benchmarks/sasrec_windows.py` runs (same models and stopping rule; the file instead "
        "of a date, the load at their end).\n\n"
    )
    rows = rows + window_rows()
    missing = ", ".join(f"{m} on {d}" for d, m in missing_rows(rows)) or "none"
    tail = f"\nNo converged run committed here yet: {missing}.\n"
    write_text(TABLE, intro + table(rows) + "\n" + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "amazon-scientific"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "runs"))
    parser.add_argument("--table-only", action="store_true", help="rewrite the doc, run nothing")
    args = parser.parse_args()
    rows = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else []
    if not args.table_only:
        for dataset in args.datasets:
            rows = merge(rows, run_dataset(dataset, args))
            write_json(RESULTS, rows)  # after each dataset: a later failure loses nothing
    write_table(rows)
    print(TABLE.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
