"""EASE on one split: validation and test NDCG@10 at each λ of a grid (after a search, not for it).

`recfuse tune` selects λ on validation only. This script shows, next to that choice, how the test
metric moves over the same λ values, so a doc can say whether the validation optimum carries over
to the test targets (leave-one-out gives one validation item per user: a noisy selector). Nothing
here feeds back into any selection.

    python benchmarks/ease_lambda_curve.py --dataset ml-100k --l2 10 50 150 500 2000 \
        --out benchmarks/results/ease_lambda_ml100k.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from recfuse.atomic import write_text
from recfuse.data import load_dataset
from recfuse.evaluation import Evaluator
from recfuse.models import EASE
from recfuse.split import make_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--l2", type=float, nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    split = make_split(load_dataset(args.dataset), "leave_one_out")
    evaluator = Evaluator(split, ks=(10,))
    rows = []
    for l2 in sorted(set(args.l2)):
        model = EASE(l2=l2).fit(split)
        row = {"l2": l2}
        for stage in ("valid", "test"):
            row[f"{stage} NDCG@10"] = evaluator.evaluate(model, stage).metrics["NDCG@10"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"dataset": args.dataset, "load_after": os.getloadavg(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
