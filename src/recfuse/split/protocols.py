"""Split protocols: leave-one-out by time, global temporal, per-user ratio, group-disjoint.

Every protocol is deterministic under its seed and returns a `Split` whose parts are disjoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recfuse.data.dataset import Dataset
from recfuse.errors import ConfigError, DataError
from recfuse.split.group import assign_groups
from recfuse.split.split import Split


def _make(dataset: Dataset, protocol: str, seed: int, part: np.ndarray, **params: object) -> Split:
    inter = dataset.interactions
    train, valid, test = (inter[part == k].reset_index(drop=True) for k in (0, 1, 2))
    return Split(protocol, seed, dataset.n_users, dataset.n_items, train, valid, test, dict(params))


def leave_one_out(dataset: Dataset, seed: int = 0) -> Split:
    """Per user, last interaction → test, second-to-last → valid, the rest → train.

    Users with two interactions give one to test; users with one keep it in train. The order is
    the dataset's time order (ties keep file order). ``seed`` is recorded but unused.
    """
    inter = dataset.interactions  # sorted by (user, time)
    from_end = inter.groupby("user").cumcount(ascending=False).to_numpy()
    size = inter.groupby("user")["item"].transform("size").to_numpy()
    part = np.zeros(len(inter), dtype=np.int8)
    part[(from_end == 0) & (size >= 2)] = 2
    part[(from_end == 1) & (size >= 3)] = 1
    return _make(dataset, "leave_one_out", seed, part)


def temporal(
    dataset: Dataset, valid_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0
) -> Split:
    """Global time cut: the last ``test_frac`` of interactions by time → test, the
    ``valid_frac`` before → valid. Needs real timestamps: per-user positions are not a clock."""
    if not dataset.has_timestamps:
        raise DataError(
            f"{dataset.name}: temporal split needs timestamps; this dataset has per-user order only "
            "(use leave_one_out or ratio)"
        )
    _check_fracs(valid_frac, test_frac)
    times = dataset.interactions["time"].to_numpy()
    t_valid, t_test = np.quantile(times, [1 - valid_frac - test_frac, 1 - test_frac])
    part = np.zeros(len(times), dtype=np.int8)
    part[times >= t_valid] = 1
    part[times >= t_test] = 2
    return _make(
        dataset,
        "temporal",
        seed,
        part,
        valid_from=int(t_valid),
        test_from=int(t_test),
        valid_frac=valid_frac,
        test_frac=test_frac,
    )


def ratio(
    dataset: Dataset, valid_frac: float = 0.1, test_frac: float = 0.2, seed: int = 0
) -> Split:
    """Per user, a random ``test_frac`` of interactions → test and ``valid_frac`` → valid."""
    _check_fracs(valid_frac, test_frac)
    rng = np.random.default_rng(seed)
    inter = dataset.interactions
    key = rng.random(len(inter))
    rank = pd.Series(key).groupby(inter["user"].to_numpy()).rank(method="first").to_numpy() - 1
    size = inter.groupby("user")["item"].transform("size").to_numpy()
    n_test = np.floor(size * test_frac).astype(int)
    n_valid = np.floor(size * valid_frac).astype(int)
    part = np.zeros(len(inter), dtype=np.int8)
    part[rank < n_test + n_valid] = 1
    part[rank < n_test] = 2
    return _make(dataset, "ratio", seed, part, valid_frac=valid_frac, test_frac=test_frac)


def group_disjoint(
    dataset: Dataset,
    column: str,
    valid_frac: float = 0.1,
    test_frac: float = 0.2,
    seed: int = 0,
) -> Split:
    """No group (a column of the interactions, users or items table) straddles two parts.

    A cell holding a list (an item with several authors) joins those groups into one connected
    component, which then moves as one.
    """
    _check_fracs(valid_frac, test_frac)
    inter = dataset.interactions
    if column in ("user", "item"):
        groups: Sequence[object] = inter[column].tolist()
    elif column in dataset.items.columns:
        groups = dataset.items[column].to_numpy()[inter["item"].to_numpy()].tolist()
    elif column in dataset.users.columns:
        groups = dataset.users[column].to_numpy()[inter["user"].to_numpy()].tolist()
    else:
        raise ConfigError(f"split.group_column: {column!r} is not a column of {dataset.name}")
    part = assign_groups(groups, (1 - valid_frac - test_frac, valid_frac, test_frac), seed)
    return _make(
        dataset,
        "group_disjoint",
        seed,
        part,
        column=column,
        valid_frac=valid_frac,
        test_frac=test_frac,
    )


def _check_fracs(valid_frac: float, test_frac: float) -> None:
    if not (0 <= valid_frac < 1 and 0 < test_frac < 1 and valid_frac + test_frac < 1):
        raise ConfigError(
            f"split fractions valid={valid_frac}, test={test_frac} must be in [0, 1) and sum below 1"
        )


PROTOCOLS = {
    "leave_one_out": leave_one_out,
    "temporal": temporal,
    "ratio": ratio,
    "group_disjoint": group_disjoint,
}


def make_split(
    dataset: Dataset, protocol: str = "leave_one_out", seed: int = 0, **params: object
) -> Split:
    """Split ``dataset`` by protocol name (see `PROTOCOLS`)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"split.protocol: unknown {protocol!r}; known: {', '.join(PROTOCOLS)}")
    try:
        return PROTOCOLS[protocol](dataset, seed=seed, **params)  # type: ignore[operator]
    except TypeError as exc:
        raise ConfigError(f"split: {exc}") from None
