"""No validation or test interaction reaches the collaborative embeddings behind CEMG's codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from generative_synthetic import chain_split

from recfuse.generative.collaborative import collaborative_embeddings, inner_split
from recfuse.split import Split


def with_other_future(split: Split, seed: int) -> Split:
    """The same training period, but different (random) validation and test interactions."""
    rng = np.random.default_rng(seed)

    def scramble(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out["item"] = rng.integers(0, split.n_items, len(frame))
        return out

    return Split(
        split.protocol,
        split.seed,
        split.n_users,
        split.n_items,
        split.train,
        scramble(split.valid),
        scramble(split.test),
    )


def leaky(split: Split) -> Split:
    """A split whose 'training' part also holds the test interactions (what must not happen)."""
    train = pd.concat([split.train, split.test]).sort_values(["user", "time"], kind="stable")
    return Split(
        split.protocol,
        split.seed,
        split.n_users,
        split.n_items,
        train.reset_index(drop=True),
        split.valid,
        split.test,
    )


def test_inner_split_uses_training_rows_only() -> None:
    split = chain_split()
    inner = inner_split(split)
    train_rows = set(map(tuple, split.train[["user", "item", "time"]].to_numpy().tolist()))
    inner_rows = pd.concat([inner.train, inner.valid, inner.test])
    assert len(inner_rows) == len(split.train)
    assert set(map(tuple, inner_rows[["user", "item", "time"]].to_numpy().tolist())) == train_rows
    assert inner.test.empty


@pytest.mark.parametrize("model", ["bpr", "sasrec"])
def test_embeddings_do_not_depend_on_valid_or_test(model: str) -> None:
    split = chain_split()
    kwargs = {"model": model, "dim": 8, "seed": 0, "epochs": 2, "valid_users": None}
    base, _ = collaborative_embeddings(split, **kwargs)
    other, _ = collaborative_embeddings(with_other_future(split, 7), **kwargs)
    # identical, bit for bit: nothing from the validation or test period was read
    np.testing.assert_array_equal(base, other)
    # and the check is sensitive: letting test interactions into training changes the embeddings
    leaked, _ = collaborative_embeddings(leaky(split), **kwargs)
    assert not np.array_equal(base, leaked)
