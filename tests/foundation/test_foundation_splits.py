"""Splits are disjoint, respect time, are deterministic under a seed and survive a save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recfuse.data import build_dataset, load_dataset
from recfuse.errors import DataError
from recfuse.split import Split, assign_groups, group_components, make_split


@pytest.fixture(scope="module")
def ml100k():  # type: ignore[no-untyped-def]
    return load_dataset("ml-100k")


def _keys(frame: pd.DataFrame) -> set[tuple[int, int, int]]:
    return set(map(tuple, frame[["user", "item", "time"]].to_numpy().tolist()))


def _assert_partition(split: Split, total: int) -> None:
    parts = [_keys(split.train), _keys(split.valid), _keys(split.test)]
    assert sum(map(len, parts)) == total
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])


def test_leave_one_out_is_disjoint_and_respects_time(ml100k) -> None:  # type: ignore[no-untyped-def]
    split = make_split(ml100k, "leave_one_out")
    _assert_partition(split, ml100k.n_interactions)
    assert split.valid["user"].is_unique and split.test["user"].is_unique
    last_train = split.train.groupby("user")["time"].max()
    valid_t = split.valid.set_index("user")["time"]
    test_t = split.test.set_index("user")["time"]
    assert (valid_t >= last_train.reindex(valid_t.index)).all()
    assert (test_t >= valid_t.reindex(test_t.index)).all()


def test_leave_one_out_uses_sequence_position_without_timestamps() -> None:
    ds = load_dataset("amazon-office")
    split = make_split(ds, "leave_one_out")
    seqs = ds.interactions.groupby("user")["item"].apply(list)
    test = split.test.set_index("user")["item"]
    valid = split.valid.set_index("user")["item"]
    assert all(seqs[u][-1] == test[u] and seqs[u][-2] == valid[u] for u in seqs.index[:500])


def test_temporal_split_is_a_global_cut(ml100k) -> None:  # type: ignore[no-untyped-def]
    split = make_split(ml100k, "temporal", valid_frac=0.1, test_frac=0.1)
    _assert_partition(split, ml100k.n_interactions)
    assert split.train["time"].max() <= split.valid["time"].min()
    assert split.valid["time"].max() <= split.test["time"].min()


def test_temporal_split_refuses_order_only_data() -> None:
    with pytest.raises(DataError, match="needs timestamps"):
        make_split(load_dataset("amazon-office"), "temporal")


def test_ratio_split_is_deterministic_under_seed(ml100k) -> None:  # type: ignore[no-untyped-def]
    a = make_split(ml100k, "ratio", seed=3)
    b = make_split(ml100k, "ratio", seed=3)
    c = make_split(ml100k, "ratio", seed=4)
    _assert_partition(a, ml100k.n_interactions)
    assert _keys(a.test) == _keys(b.test) and _keys(a.test) != _keys(c.test)
    per_user = a.test.groupby("user").size() / ml100k.interactions.groupby("user").size()
    assert per_user.dropna().between(0.1, 0.21).all()


def test_group_disjoint_by_item_column(ml100k) -> None:  # type: ignore[no-untyped-def]
    split = make_split(ml100k, "group_disjoint", column="occupation", seed=1)
    _assert_partition(split, ml100k.n_interactions)
    occ = ml100k.users["occupation"].to_numpy()
    groups = [set(occ[p["user"].to_numpy()]) for p in (split.train, split.valid, split.test)]
    assert (
        not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    )


def test_group_components_join_coauthors() -> None:
    comp = group_components([["A"], ["B"], ["A", "C"], ["C"], ["D"], []])
    assert comp[0] == comp[2] == comp[3]
    assert len({comp[0], comp[1], comp[4], comp[5]}) == 4
    parts = assign_groups([["A"], ["B"], ["A", "C"], ["C"], ["D"], []], (0.5, 0.25, 0.25), seed=0)
    assert parts[0] == parts[2] == parts[3]


def test_save_and_load_round_trip(ml100k, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    split = make_split(ml100k, "ratio", seed=7)
    split.save(tmp_path / "split")
    loaded = Split.load(tmp_path / "split")
    assert loaded.summary() == split.summary()
    pd.testing.assert_frame_equal(loaded.test, split.test)


def test_histories_never_include_targets(ml100k) -> None:  # type: ignore[no-untyped-def]
    split = make_split(ml100k, "leave_one_out")
    hist_valid = split.histories("valid")
    hist_test = split.histories("test")
    for row in split.valid.itertuples():
        assert row.item not in set(hist_valid[row.user].tolist())
        assert row.item in set(hist_test[row.user].tolist())
    for row in split.test.itertuples():
        assert row.item not in set(hist_test[row.user].tolist())


def test_user_with_one_interaction_stays_in_train() -> None:
    raw = pd.DataFrame(
        {
            "user_id": ["a", "b", "b", "c", "c", "c"],
            "item_id": list("xxyxyz"),
            "time": [0, 0, 1, 0, 1, 2],
        }
    )
    split = make_split(build_dataset("tiny", raw, has_timestamps=False), "leave_one_out")
    assert len(split.train) == 3 and len(split.valid) == 1 and len(split.test) == 2
    assert np.array_equal(np.sort(split.test["user"].to_numpy()), [1, 2])
