"""Swing and ItemCF fit time on a whole dataset (items/s) and Swing's scaling with users per item.

Usage: python benchmarks/i2i_swing.py [--dataset amazon-scientific] [--caps 10 25 50 100 200]
Prints one JSON line per fit (wall seconds, items/s, validation Recall@10 under the trigger
protocol) and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from recfuse.data import load_dataset
from recfuse.evaluation import Evaluator
from recfuse.models.i2i import ItemCF, Swing
from recfuse.split import make_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="amazon-scientific")
    parser.add_argument("--caps", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    args = parser.parse_args()
    split = make_split(load_dataset(args.dataset), "leave_one_out", seed=0)
    evaluator = Evaluator(split, ks=(10,))
    print(
        json.dumps({"load_before": os.getloadavg(), "threads": os.environ.get("OMP_NUM_THREADS")})
    )
    models = [ItemCF()] + [Swing(max_users=cap) for cap in args.caps]
    for model in models:
        started = time.perf_counter()
        model.fit(split)
        seconds = time.perf_counter() - started
        recall = evaluator.evaluate(model, "valid").metrics["Recall@10"]
        row = {"model": model.name, "max_users": getattr(model, "max_users", None),
               "fit_s": round(seconds, 2), "items_per_s": round(split.n_items / seconds),
               "valid_recall@10": round(recall, 4)}  # fmt: skip
        print(json.dumps(row), flush=True)
    print(json.dumps({"load_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
