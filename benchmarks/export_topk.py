"""`recfuse export` throughput: every user's top-K from a saved run, chunked to Parquet.

Trains (or reuses) a run, then in a fresh process-state measures: loading the run (model.json +
safetensors + split + id maps, fingerprint checked), exporting top-K for all users, users/s and
the peak resident memory of the process. Run it through ../shared/tools/heavy.

    python benchmarks/export_topk.py --dataset microlens-50k --model ease --k 100
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from recfuse.runs import load_config, load_run, run_config
from recfuse.runs.export import export_topk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="microlens-50k")
    parser.add_argument("--model", default="ease")
    parser.add_argument("--run", type=Path, default=None, help="reuse this run folder")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--batch-users", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/recfuse-export"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = args.run
    if run is None:
        # test metrics on a 2,000-user subsample: this benchmark is about export, not accuracy
        config = load_config(
            None,
            [f"output={args.out}", f"name=export-{args.model}-{args.dataset}",
             f"data.name={args.dataset}", f"model.name={args.model}", "eval.max_users=2000",
             "eval.ks=[10]"],
        )  # fmt: skip
        started = time.perf_counter()
        run = run_config(config)
        print(f"run (fit + evaluate 2,000 users + save): {time.perf_counter() - started:.1f} s")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    model = load_run(run)
    load_s = time.perf_counter() - started
    stats = export_topk(model, args.out / "topk.parquet", k=args.k, batch_users=args.batch_users)
    result = {
        "dataset": args.dataset,
        "model": model.name,
        "users": stats.users,
        "k": args.k,
        "batch_users": args.batch_users,
        "threads": args.threads,
        "load_seconds": round(load_s, 2),
        "export_seconds": round(stats.seconds, 1),
        "users_per_second": round(stats.users_per_second, 1),
        "peak_rss_mb": round(stats.peak_rss_mb),
        "peak_rss_mb_before_load": round(rss_before),
        "weights_mb": round((run / "model" / "weights.safetensors").stat().st_size / 2**20),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
