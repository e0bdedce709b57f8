"""EASE scoring, four ways: gather rows of B, SciPy CSR @ dense, torch sparse CSR @ dense, dense @ dense.

x_u · B for chunks of 1,024 users (the evaluator's chunk), histories as the test stage sees them
(train + valid). B comes from a real EASE fit on the dataset, except above ``--fit-max-items``
items, where a random dense B of the same shape stands in (the timing of x_u · B does not depend
on B's values; a 19,220-item EASE fit takes minutes on this CPU). Reports the median of
``--repeats`` timings per chunk, and whether each way's scores equal the gather's bit for bit.

    /work/shared/tools/heavy --threads 1 -- python benchmarks/ease_scoring.py \
        --datasets ml-100k microlens-50k --out benchmarks/results/ease_scoring.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from recfuse.atomic import write_text
from recfuse.data import load_dataset
from recfuse.models import EASE
from recfuse.models.classic import history_matrix
from recfuse.split import make_split

Scorer = Callable[[torch.Tensor, Sequence[np.ndarray]], np.ndarray]


def gather(b: torch.Tensor, histories: Sequence[np.ndarray]) -> np.ndarray:
    """The scorer of commit a53f9a8: index_add of B's rows for each history item."""
    histories = [np.unique(h) for h in histories]
    lengths = [len(h) for h in histories]
    rows = torch.as_tensor(np.repeat(np.arange(len(histories)), lengths))
    cols = torch.as_tensor(np.concatenate(histories) if sum(lengths) else np.zeros(0, np.int64))
    out = torch.zeros(len(histories), b.shape[0])
    out.index_add_(0, rows, b[cols])
    return out.numpy()


def scipy_csr(b: torch.Tensor, histories: Sequence[np.ndarray]) -> np.ndarray:
    return np.asarray(history_matrix(histories, b.shape[0]) @ b.numpy(), dtype=np.float32)


def torch_sparse(b: torch.Tensor, histories: Sequence[np.ndarray]) -> np.ndarray:
    x = history_matrix(histories, b.shape[0])
    xt = torch.sparse_csr_tensor(
        torch.as_tensor(x.indptr, dtype=torch.int64),
        torch.as_tensor(x.indices, dtype=torch.int64),
        torch.as_tensor(x.data),
        size=x.shape,
    )
    return (xt @ b).numpy()


def dense(b: torch.Tensor, histories: Sequence[np.ndarray]) -> np.ndarray:
    x = torch.as_tensor(history_matrix(histories, b.shape[0]).toarray())
    return (x @ b).numpy()


WAYS: dict[str, Scorer] = {
    "gather": gather,
    "scipy_csr": scipy_csr,
    "torch_sparse": torch_sparse,
    "dense": dense,
}


def bench(name: str, chunks: int, repeats: int, fit_max_items: int) -> dict[str, object]:
    split = make_split(load_dataset(name), "leave_one_out")
    started = time.perf_counter()
    real = split.n_items <= fit_max_items
    if real:
        b = EASE().fit(split).b_
    else:
        b = torch.randn(split.n_items, split.n_items, generator=torch.Generator().manual_seed(0))
    fit_s = time.perf_counter() - started
    hist = split.histories("test")
    users = np.random.default_rng(0).permutation(split.n_users)
    parts = [users[i : i + 1024] for i in range(0, len(users), 1024)][:chunks]
    out: dict[str, object] = {
        "dataset": name,
        "n_users": split.n_users,
        "n_items": split.n_items,
        "mean history": float(np.mean([len(hist[u]) for u in users])),
        "chunks": len(parts),
        "B": "EASE fit" if real else "random (timing only)",
        "fit s": fit_s,
    }
    reference = [gather(b, [hist[u] for u in p]) for p in parts]
    for way, fn in WAYS.items():
        times, exact, max_diff = [], True, 0.0
        for p, ref in zip(parts, reference, strict=True):
            h = [hist[u] for u in p]
            runs = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                scores = fn(b, h)
                runs.append(time.perf_counter() - t0)
            times.append(float(np.median(runs)))
            exact &= bool(np.array_equal(scores, ref))
            max_diff = max(max_diff, float(np.abs(scores - ref).max()))
        out[way] = {
            "s per 1024 users": float(np.mean(times)),
            "s all users": float(np.mean(times)) * split.n_users / 1024,
            "exact vs gather": exact,
            "max abs diff": max_diff,
        }
        print(name, way, out[way], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "microlens-50k"])
    parser.add_argument("--chunks", type=int, default=4, help="chunks of 1,024 users timed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-max-items", type=int, default=5000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    results = [bench(n, args.chunks, args.repeats, args.fit_max_items) for n in args.datasets]
    meta = {"torch threads": torch.get_num_threads(), "load after": os.getloadavg()}
    write_text(args.out, json.dumps({"meta": meta, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
