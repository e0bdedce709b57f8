"""Does the SASRec config `recfuse tune` found beat the default on *test*? (docs/toolkit.md)

Reads the tuned runs' per-user test metrics (`recfuse run best.yaml --set seed=S`, one folder per
seed) and the default config's per-user test NDCG@10 from `benchmarks/sasrec_windows.py` JSON
(same ml-100k leave-one-out split, full ranking, one window per user, 200 epochs, patience 10),
and prints per-seed and seeds-pooled paired tests (tuned - default). Selection used validation
only; this is the one look at test.

    python benchmarks/tune_check.py --tuned runs/tune-final/sasrec-tuned-s{0,1,2}-* \
        --default benchmarks/results/sasrec_ml100k_masked_last_s{0,1,2}.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from recfuse.evaluation.significance import paired_arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=Path, nargs="+", required=True, help="run folders")
    parser.add_argument("--default", type=Path, nargs="+", required=True, help="JSON, same order")
    args = parser.parse_args()
    tuned, default = [], []
    for run, ref in zip(args.tuned, args.default, strict=True):
        frame = pd.read_parquet(next(run.glob("per_user_test_*.parquet"))).sort_values("user")
        a = frame["NDCG@10"].to_numpy(dtype=float)
        (b_run,) = json.loads(ref.read_text())["runs"]
        b = np.asarray(b_run["per-user NDCG@10"], dtype=float)
        print(
            f"seed {b_run['seed']}: tuned {run.name} vs default: {paired_arrays(a, b, 'NDCG@10').line()}"
        )
        tuned.append(a)
        default.append(b)
    pooled = paired_arrays(np.mean(tuned, axis=0), np.mean(default, axis=0), "NDCG@10")
    means = [float(t.mean()) for t in tuned]
    print(
        f"tuned per seed {[round(m, 4) for m in means]}: {np.mean(means):.4f} ± {np.std(means, ddof=1) if len(means) > 1 else 0:.4f}"
    )
    print(f"seeds pooled per user: {pooled.line()}")


if __name__ == "__main__":
    main()
