"""`export_topk`: every user's top-K list, in raw ids, written chunk by chunk to Parquet.

Memory stays at one chunk of scores (``batch_users × n_items × 4`` bytes, plus the model), so
all 50,000 MicroLens users export as easily as 943 MovieLens ones.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from recfuse.atomic import atomic_path
from recfuse.models.base import Recommender, mask_histories, top_k

SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("rank", pa.int32()),
        ("item_id", pa.string()),
        ("score", pa.float32()),
    ]
)


@dataclass(frozen=True)
class ExportStats:
    users: int
    rows: int
    seconds: float
    peak_rss_mb: float

    @property
    def users_per_second(self) -> float:
        return self.users / max(self.seconds, 1e-9)

    def line(self) -> str:
        return (
            f"{self.users} users, {self.rows} rows in {self.seconds:.1f} s "
            f"({self.users_per_second:.0f} users/s), peak RSS {self.peak_rss_mb:.0f} MB"
        )


def topk_chunk(
    model: Recommender, users: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` of ``users`` (indices) with every interaction of theirs masked.

    Returns:
        rows [n] (position in ``users``), items [n] (item indices), scores [n]; items with a
        non-finite score (masked, or outside a generative model's beam) are left out.
    """
    hist = [model.serving_history(int(u)) for u in users]
    scores = np.array(model.score(users, hist), dtype=np.float32, copy=True)
    mask_histories(scores, hist)
    top = top_k(scores, k)
    values = np.take_along_axis(scores, top, axis=1)
    keep = np.isfinite(values)
    rows = np.nonzero(keep)[0]
    return rows, top[keep], values[keep]


def export_topk(
    model: Recommender,
    out: str | Path,
    k: int = 100,
    batch_users: int = 1024,
    users: np.ndarray | None = None,
    progress: bool = True,
) -> ExportStats:
    """Write ``user_id, rank, item_id, score`` rows (best first per user) to ``out`` (Parquet).

    Args:
        model: a fitted or loaded model with ``split_`` and ``ids_`` (e.g. from `load_run`).
        k: items per user.
        batch_users: users scored per chunk (one Parquet row group each).
        users: user indices to export (default: every user of the split).
    """
    ids = model.ids_
    users = np.arange(model.split_.n_users) if users is None else np.asarray(users)
    user_raw = ids.user_ids.astype(str)
    item_raw = ids.item_ids.astype(str)
    started = time.perf_counter()
    n_rows = 0
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, SCHEMA) as writer:
        chunks = range(0, len(users), batch_users)
        for lo in tqdm(chunks, desc="export", unit="chunk", disable=not progress):
            chunk = users[lo : lo + batch_users]
            rows, items, scores = topk_chunk(model, chunk, k)
            ranks = np.concatenate([np.arange(n) for n in np.bincount(rows, minlength=len(chunk))])
            table = pa.table(
                {
                    "user_id": user_raw[chunk[rows]],
                    "rank": (ranks + 1).astype(np.int32),
                    "item_id": item_raw[items],
                    "score": scores.astype(np.float32),
                },
                schema=SCHEMA,
            )
            writer.write_table(table)
            n_rows += len(rows)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return ExportStats(len(users), n_rows, seconds, peak)
