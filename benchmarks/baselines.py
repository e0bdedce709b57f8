"""Every baseline on ml-100k, amazon-scientific and microlens-50k, leave-one-out, full ranking.

Writes one run folder per dataset and the combined table to docs/results/baselines.md.
    python benchmarks/baselines.py [--datasets ...] [--max-seconds 1200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

from recfuse.atomic import write_text
from recfuse.runs import metrics_markdown

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--datasets", nargs="+", default=["ml-100k", "amazon-scientific", "microlens-50k"]
    )
    parser.add_argument("--max-seconds", type=float, default=1200.0)
    parser.add_argument("--out", default=str(ROOT / "runs"))
    args = parser.parse_args()
    tables = []
    for name in args.datasets:
        before = set(Path(args.out).glob(f"baselines-{name}-*"))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "recfuse.cli",
                "study",
                "baselines",
                "--dataset",
                name,
                "--max-seconds",
                str(args.max_seconds),
                "--out",
                args.out,
            ],
            check=True,
        )
        folder = max(set(Path(args.out).glob(f"baselines-{name}-*")) - before)
        tables.append(pd.read_json(folder / "metrics.json").T.assign(dataset=name, run=folder.name))
        rows = []
        for t in tables:
            for model, r in t.iterrows():
                rows.append(
                    {
                        "dataset": r["dataset"],
                        "model": model,
                        "protocol": r["protocol"],
                        "NDCG@10": r["test"]["NDCG@10"],
                        "Recall@10": r["test"]["Recall@10"],
                        "valid NDCG@10": r["valid"]["NDCG@10"],
                        "train s": round(r["fit_seconds"], 1),
                        "run": r["run"],
                    }
                )
        write_text(
            ROOT / "docs" / "results" / "baselines.md",
            "# Baselines: leave-one-out, full ranking over all items\n\n" + metrics_markdown(rows),
        )


if __name__ == "__main__":
    main()
