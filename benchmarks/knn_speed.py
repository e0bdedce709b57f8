"""Cosine k-NN on ChEMBL Morgan fingerprints: `recfuse.audit.neighbours.cosine_top_k` against
scikit-learn's brute force on the same sparse rows, side by side in one job.

The shape is one fold of the audit's group probe on all 2,687 assays: ``--index`` random rows as
the fitted probe, ``--queries`` other rows asked for their 10 neighbours. Median of ``--repeats``
runs each; it checks that both return the same similarities. Run it through the heavy queue:

    ../shared/tools/heavy --threads 1 -- python benchmarks/knn_speed.py \
        --out benchmarks/results/knn_speed_chembl.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from recfuse.atomic import write_text
from recfuse.audit.cases import load_audit_table
from recfuse.audit.neighbours import cosine_top_k


def timed(fn: object, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=int, default=48_000)
    parser.add_argument("--queries", type=int, default=12_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    table = load_audit_table("chembl-assays", "assay_chembl_id", "pchembl_value")
    x = table.features(np.arange(table.n_rows))
    perm = np.random.default_rng(0).permutation(x.shape[0])
    index, query = x[perm[: args.index]], x[perm[args.index : args.index + args.queries]]
    load_before = os.getloadavg()
    knn = NearestNeighbors(n_neighbors=args.k, metric="cosine", algorithm="brute")
    base_s, (dist, _) = timed(lambda: knn.fit(index).kneighbors(query), args.repeats)
    rows: dict[str, object] = {"scikit-learn brute": {"median s": base_s}}
    print(f"scikit-learn brute: {base_s:.2f} s", flush=True)
    for share in args.shares:
        fast_s, (sims, _) = timed(
            lambda share=share: cosine_top_k(query, index, args.k, dense_share=share),
            args.repeats,
        )
        gap = float(np.abs((1.0 - dist) - sims).max())
        rows[f"cosine_top_k dense_share={share}"] = {
            "median s": fast_s,
            "speed-up": base_s / fast_s,
            "max similarity difference": gap,
        }
        print(f"dense_share {share}: {fast_s:.2f} s, {base_s / fast_s:.2f}x, gap {gap:.1e}")
    result = {
        "args": vars(args),
        "rows": {"index": index.shape[0], "queries": query.shape[0], "bits": x.shape[1]},
        "torch threads": torch.get_num_threads(),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "load before": load_before,
        "load after": os.getloadavg(),
        "results": rows,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
