"""A tiny synthetic split for fast generative tests (real datasets are used by the study)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recfuse.split import Split


def chain_split(n_users: int = 80, n_items: int = 30, length: int = 8, seed: int = 0) -> Split:
    """Users walk the catalogue in steps of +1 from a random start: item i is followed by i + 1.

    Leave-one-out: the last item of each walk is test, the one before valid, the rest train.
    """
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_users)
    items = (starts[:, None] + np.arange(length)[None, :]) % n_items
    frame = pd.DataFrame(
        {
            "user": np.repeat(np.arange(n_users), length),
            "item": items.ravel(),
            "time": np.tile(np.arange(length), n_users),
        }
    )
    pos = frame["time"].to_numpy()
    parts = [frame[pos < length - 2], frame[pos == length - 2], frame[pos == length - 1]]
    return Split(
        "leave_one_out", seed, n_users, n_items, *[p.reset_index(drop=True) for p in parts]
    )
