"""SASRec/GRU4Rec on one split, several seeds: test NDCG@10, epochs, wall time, targets per epoch.

Compares training modes: one window per user per epoch (``--windows last``, the old behaviour) and
sliding windows over long histories (``--windows sliding --stride S``). Early stopping on
validation NDCG@10 (full ranking), test metrics of the best-validation weights. Run it through
``/work/shared/tools/heavy`` and put the printed threads/load next to the numbers.

    python benchmarks/sasrec_windows.py --dataset ml-100k --seeds 0 1 2 --windows sliding \
        --out benchmarks/results/sasrec_ml100k_sliding.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recfuse.atomic import write_text
from recfuse.data import load_dataset
from recfuse.evaluation import Evaluator, fit_validated
from recfuse.models import GRU4Rec, SASRec
from recfuse.split import Split, make_split


def sample_users(split: Split, n: int, seed: int = 0) -> Split:
    """The split restricted to ``n`` random users (all their interactions; items kept)."""
    keep = np.random.default_rng(seed).choice(split.n_users, n, replace=False)
    parts = {
        name: frame[frame["user"].isin(keep)].reset_index(drop=True)
        for name, frame in (("train", split.train), ("valid", split.valid), ("test", split.test))
    }
    return Split(
        protocol=split.protocol,
        seed=split.seed,
        n_users=split.n_users,
        n_items=split.n_items,
        params={**split.params, "user_sample": n},
        **parts,
    )


def targets_per_epoch(model: Any, split: Split) -> int:
    """Next-item targets the model's `batches` present in one epoch."""
    rng = np.random.default_rng(0)
    return int(sum(int((y < split.n_items).sum()) for _, y in model.batches(split, rng)))


def run_one(args: argparse.Namespace, split: Split, seed: int) -> dict[str, Any]:
    cls = SASRec if args.model == "sasrec" else GRU4Rec
    kwargs: dict[str, Any] = dict(
        dim=64,
        max_len=args.max_len,
        loss="ce",
        dropout=args.dropout,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=seed,
        valid_users=args.valid_users,
        progress=False,
    )
    if args.windows is not None:  # absent before sliding windows existed (the "before" runs)
        kwargs.update(windows=args.windows, stride=args.stride)
    if args.model == "sasrec":
        kwargs.update(blocks=2, heads=args.heads)
        if args.ffn is not None:
            kwargs.update(ffn=args.ffn, norm=args.norm)
    model = cls(**kwargs)
    started, cpu = time.perf_counter(), time.process_time()
    fit_validated(model, split)  # early stopping on validation NDCG@10 (patience)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    result = Evaluator(split, ks=(10,)).evaluate(model, "test")
    test, per_user = result.metrics, result.per_user.sort_values("user")
    best_epoch = int(np.argmax([h["NDCG@10"] for h in model.history_]))
    return {
        "seed": seed,
        "test NDCG@10": test["NDCG@10"],
        "test Recall@10": test["Recall@10"],
        "valid NDCG@10": model.best_valid_,
        "epochs": len(model.history_),
        "best epoch": best_epoch + 1,
        "train s": wall,
        "s per epoch": wall / len(model.history_),
        "cpu s": cpu,  # all threads; less sensitive than wall time to other jobs on the cores
        "targets per epoch": targets_per_epoch(model, split),
        # per-user test NDCG@10 in user order, for paired tests between arms of the same seed
        "per-user NDCG@10": [round(float(v), 6) for v in per_user["NDCG@10"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--model", choices=["sasrec", "gru4rec"], default="sasrec")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--windows", choices=["last", "sliding"], default=None)
    parser.add_argument("--stride", type=int, default=None)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--ffn", type=int, default=None)
    parser.add_argument("--norm", choices=["pre", "post"], default="pre")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--valid-users", type=int, default=None)
    parser.add_argument("--user-sample", type=int, default=None)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    split = make_split(load_dataset(args.dataset), "leave_one_out")
    if args.user_sample is not None:
        split = sample_users(split, args.user_sample)
    runs = []
    for seed in args.seeds:
        runs.append(run_one(args, split, seed))
        print(
            json.dumps({k: v for k, v in runs[-1].items() if k != "per-user NDCG@10"}), flush=True
        )
    ndcg = [r["test NDCG@10"] for r in runs]
    result = {
        "args": vars(args),
        "threads": torch.get_num_threads(),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "load_after": os.getloadavg(),
        "runs": runs,
        "test NDCG@10 mean": float(np.mean(ndcg)),
        "test NDCG@10 std": float(np.std(ndcg, ddof=1)) if len(ndcg) > 1 else 0.0,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))


if __name__ == "__main__":
    main()
