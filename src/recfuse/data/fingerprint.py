"""Dataset fingerprints: one short hash that says "these are the same interactions and items".

A saved model records the fingerprint of the data it was trained on; loading it against other
data, and comparing runs of different datasets, are refused by comparing fingerprints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from recfuse.data.dataset import Dataset


def interactions_fingerprint(
    interactions: pd.DataFrame | Sequence[pd.DataFrame], item_ids: Sequence[Any] | np.ndarray
) -> str:
    """SHA-256 (first 16 hex digits) of the (user, item, time) triples and the item id list.

    The triples are hashed as a multiset (sorted first), so the train / valid / test parts of a
    split, concatenated in any order, give the same fingerprint as the dataset they came from.
    The item ids are hashed in index order: the same ids in another order map indices to
    different items, which is a different dataset for a model.

    Args:
        interactions: one frame, or several (a split's parts), with int columns user, item, time.
        item_ids: the original id of each item index, length n_items.
    """
    frames = [interactions] if isinstance(interactions, pd.DataFrame) else list(interactions)
    cols = [
        np.concatenate([f[c].to_numpy(dtype=np.int64) for f in frames]) if frames else np.zeros(0)
        for c in ("user", "item", "time")
    ]
    triples = np.stack(cols, axis=1).astype(np.int64)
    triples = triples[np.lexsort((triples[:, 2], triples[:, 1], triples[:, 0]))]
    digest = hashlib.sha256()
    digest.update(len(triples).to_bytes(8, "little"))
    digest.update(np.ascontiguousarray(triples).tobytes())
    for item in item_ids:
        raw = str(item).encode("utf-8")
        digest.update(len(raw).to_bytes(4, "little"))
        digest.update(raw)
    return digest.hexdigest()[:16]


def dataset_fingerprint(dataset: Dataset) -> str:
    """`interactions_fingerprint` of a `Dataset` (its interactions and ``items.item_id``)."""
    return interactions_fingerprint(dataset.interactions, dataset.items["item_id"].to_numpy())
