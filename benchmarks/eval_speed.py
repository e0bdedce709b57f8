"""Evaluation speed: all 50,000 MicroLens-50k users over 19,220 items with a 64-d model.

Reported as the median of repeated runs and as a ratio to the bare score-matrix product
(users × items, the same chunks) measured in the same process. Target: under 3×.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch

from recfuse.data import load_dataset
from recfuse.evaluation import Evaluator
from recfuse.models import Recommender
from recfuse.split import make_split


class RandomFactors(Recommender):
    """A 64-d dot-product model with fixed random factors: the cost of scoring, nothing else."""

    name = "factors64"

    def __init__(self, n_users: int, n_items: int, dim: int = 64) -> None:
        gen = torch.Generator().manual_seed(0)
        self.users = torch.randn(n_users, dim, generator=gen)
        self.items = torch.randn(n_items, dim, generator=gen)

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return (self.users[torch.as_tensor(users)] @ self.items.T).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-users", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = make_split(load_dataset("microlens-50k"), "leave_one_out")
    model = RandomFactors(split.n_users, split.n_items)
    evaluator = Evaluator(split, ks=(10, 20), batch_users=args.batch_users)
    evaluator.histories("test")  # built once, like any repeated evaluation
    users = np.unique(split.test["user"].to_numpy())

    def bare() -> None:
        for lo in range(0, len(users), args.batch_users):
            model.score(users[lo : lo + args.batch_users], [])

    def full() -> None:
        evaluator.evaluate(model, "test")

    timings: dict[str, list[float]] = {"bare score product": [], "full evaluation": []}
    for _ in range(args.repeats):
        for name, fn in (("bare score product", bare), ("full evaluation", full)):
            start = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in timings.items()}
    print(
        f"threads={args.threads} batch_users={args.batch_users} repeats={args.repeats} users={len(users)} items={split.n_items}"
    )
    for name, value in med.items():
        print(
            f"{name:20s} median {value:.3f}s  (runs: {', '.join(f'{t:.2f}' for t in timings[name])})"
        )
    print(f"ratio full / bare: {med['full evaluation'] / med['bare score product']:.2f}x")


if __name__ == "__main__":
    main()
