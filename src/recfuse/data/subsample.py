"""A documented user subsample of a dataset, for studies that must fit a CPU budget (the DFF study,
its caption job).

The subsample keeps every interaction of the chosen users and only the items they touched; the
item table gains ``source_item`` (the item's index in the full dataset), so features extracted
for the full catalogue are reused by row lookup.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recfuse.data.dataset import Dataset


def sample_users(
    dataset: Dataset, n_users: int | None, seed: int = 0, min_len: int = 3
) -> np.ndarray:
    """Sorted indices of ``n_users`` random users with at least ``min_len`` interactions
    (leave-one-out needs a train, a valid and a test item); all such users when None."""
    counts = dataset.interactions.groupby("user").size()
    eligible = np.sort(counts.index[counts >= min_len].to_numpy())
    if n_users is None or n_users >= len(eligible):
        return eligible
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(eligible, n_users, replace=False))


def load_sample(name: str, max_users: int | None, seed: int = 0) -> Dataset:
    """The named dataset whole, or a seeded random sample of ``max_users`` of its users (how the
    studies fit MicroLens-50k into a CPU budget)."""
    from recfuse.data import load_dataset

    dataset = load_dataset(name)
    return subsample(dataset, sample_users(dataset, max_users, seed=seed)) if max_users else dataset


def subsample(dataset: Dataset, users: np.ndarray) -> Dataset:
    """The dataset restricted to ``users`` and their items, ids re-made contiguous."""
    inter = dataset.interactions
    inter = inter[inter["user"].isin(users)]
    kept_users = np.unique(inter["user"].to_numpy())
    kept_items = np.unique(inter["item"].to_numpy())
    frame = pd.DataFrame(
        {
            "user": np.searchsorted(kept_users, inter["user"].to_numpy()).astype(np.int64),
            "item": np.searchsorted(kept_items, inter["item"].to_numpy()).astype(np.int64),
            "time": inter["time"].to_numpy(),
        }
    ).sort_values(["user", "time"], kind="stable")
    items = dataset.items.iloc[kept_items].reset_index(drop=True)
    items["source_item"] = kept_items
    users_table = dataset.users.iloc[kept_users].reset_index(drop=True)
    return Dataset(
        f"{dataset.name}-u{len(kept_users)}",
        frame.reset_index(drop=True),
        items,
        users_table,
        dataset.has_timestamps,
        dataset.text_fields,
    )
