"""`Dataset`: interactions plus item and user side tables, with contiguous integer ids."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from recfuse.errors import DataError

INTERACTION_COLUMNS = ("user", "item", "time")
Duplicates = Literal["error", "first", "last"]
LINE = "_line"  # optional raw column: where each row came from (a file line), for messages


@dataclass(frozen=True)
class Dataset:
    """An interaction dataset with contiguous ids.

    Attributes:
        name: dataset name.
        interactions: columns ``user`` (int64 in [0, n_users)), ``item`` (int64 in [0, n_items)),
            ``time`` (int64; a Unix timestamp, or the position in the user's sequence when
            ``has_timestamps`` is False), and ``rating`` (float64) when the source has explicit
            feedback. Sorted by (user, time). Each (user, item) pair occurs once.
        items: one row per item index (0..n_items-1) with ``item_id`` (the original id) and text
            fields such as ``title`` or ``description``.
        users: one row per user index with ``user_id`` and any user attributes.
        has_timestamps: whether ``time`` is a real clock (False: per-user order only).
        text_fields: which columns of ``items`` hold item text, in the order a template uses them.
        notes: what loading dropped, by rule (``duplicates_dropped``, ``below_min_rating``).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    has_timestamps: bool = False
    text_fields: tuple[str, ...] = field(default_factory=tuple)
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    def item_texts(self, template: str | None = None) -> list[str]:
        """One string per item index, built from the text fields.

        ``template`` uses ``str.format`` fields named after item columns, e.g.
        ``"{title}. {description}"``; by default the text fields are joined with ". ".
        """
        frame = self.items.fillna("")
        if template is None:
            cols = [c for c in self.text_fields if c in frame.columns]
            if not cols:
                raise DataError(f"dataset {self.name!r} has no item text fields")
            parts = frame[cols].astype(str)
            return [". ".join(p for p in row if p.strip()) for row in parts.itertuples(index=False)]
        records = frame.to_dict("records")
        try:
            return [template.format(**r) for r in records]
        except KeyError as exc:
            raise DataError(
                f"text template field {exc} is not an item column of {self.name!r} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            ) from None

    def stats(self) -> dict[str, float | int | str]:
        """Per-dataset statistics (counts, density, sequence lengths, popularity skew)."""
        inter = self.interactions
        per_user = inter.groupby("user").size()
        per_item = np.bincount(inter["item"].to_numpy(), minlength=self.n_items)
        sorted_pop = np.sort(per_item)[::-1]
        top20 = sorted_pop[: max(1, int(0.2 * self.n_items))].sum() / max(1, sorted_pop.sum())
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": self.n_interactions / max(1, self.n_users * self.n_items),
            "timestamps": "yes" if self.has_timestamps else "order only",
            "user_len_min": int(per_user.min()) if len(per_user) else 0,
            "user_len_median": float(per_user.median()) if len(per_user) else 0.0,
            "user_len_max": int(per_user.max()) if len(per_user) else 0,
            "item_pop_min": int(per_item.min()) if self.n_items else 0,
            "item_pop_median": float(np.median(per_item)) if self.n_items else 0.0,
            "share_of_top20pct_items": float(top20),
            **self.notes,
        }


def build_dataset(
    name: str,
    raw: pd.DataFrame,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    *,
    has_timestamps: bool,
    text_fields: tuple[str, ...] = (),
    source: str = "interactions",
    duplicates: Duplicates = "first",
    notes: dict[str, int] | None = None,
) -> Dataset:
    """Remap raw ids to contiguous indices and attach side tables.

    Args:
        raw: columns ``user_id``, ``item_id`` and ``time`` with the original ids; optionally
            ``rating`` (kept) and ``_line`` (the source line of each row, for messages).
        items: optional side table indexed by original ``item_id``; items that appear only here
            are kept (they can be recommended even without interactions).
        users: optional side table indexed by original ``user_id``.
        duplicates: a (user, item) pair seen twice is an error naming both rows (``"error"``,
            the default for a user's files and configs), or only its earliest (``"first"``, the
            default here) or latest (``"last"``) interaction is kept, by time and then file
            order; how many rows went is in ``notes`` and printed to stderr. A duplicate left in
            would put the target's copy into the history (the evaluator no longer masks a
            target, but the split would still hold the pair twice).
    """
    if raw.empty:
        raise DataError(f"{source}: no interactions")
    for col in ("user_id", "item_id", "time"):
        if col not in raw.columns:
            raise DataError(f"{source}: missing column {col!r}")
    _refuse_missing_ids(raw, source)
    notes = dict(notes or {})
    raw = _drop_duplicates(raw, source, duplicates, notes)
    user_ids = pd.Index(pd.unique(raw["user_id"]))
    item_universe = raw["item_id"]
    if items is not None:
        item_universe = pd.concat([item_universe, pd.Series(items.index)])
    item_ids = pd.Index(pd.unique(item_universe))
    inter = pd.DataFrame(
        {
            "user": user_ids.get_indexer(raw["user_id"]).astype(np.int64),
            "item": item_ids.get_indexer(raw["item_id"]).astype(np.int64),
            "time": raw["time"].to_numpy(dtype=np.int64),
        }
    )
    if "rating" in raw.columns:
        inter["rating"] = pd.to_numeric(raw["rating"], errors="coerce").to_numpy(dtype=np.float64)
    # A stable sort keeps the file's order for equal timestamps, which is the only order we know.
    inter = inter.sort_values(["user", "time"], kind="stable").reset_index(drop=True)
    item_table = pd.DataFrame({"item_id": item_ids})
    if items is not None:
        side = items.reindex(item_ids)
        side.index = range(len(item_ids))
        item_table = pd.concat([item_table, side.reset_index(drop=True)], axis=1)
    user_table = pd.DataFrame({"user_id": user_ids})
    if users is not None:
        side_u = users.reindex(user_ids).reset_index(drop=True)
        user_table = pd.concat([user_table, side_u], axis=1)
    return Dataset(name, inter, item_table, user_table, has_timestamps, text_fields, notes)


def _where(raw: pd.DataFrame, position: int) -> str:
    if LINE in raw.columns:
        return f"line {raw[LINE].iloc[position]}"
    return f"row {position + 1}"


def _refuse_missing_ids(raw: pd.DataFrame, source: str) -> None:
    """A missing or empty id is an error naming its row (it used to drop the row silently)."""
    for col in ("user_id", "item_id"):
        values = raw[col]
        missing = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
        if missing.any():
            first = int(np.flatnonzero(missing)[0])
            raise DataError(
                f"{source}: {_where(raw, first)}: {col} is missing ({values.iloc[first]!r}); "
                f"{int(missing.sum())} rows have no {col}"
            )


def _drop_duplicates(
    raw: pd.DataFrame, source: str, rule: Duplicates, notes: dict[str, int]
) -> pd.DataFrame:
    ordered = raw.assign(_pos=np.arange(len(raw))).sort_values(
        ["user_id", "time", "_pos"], kind="stable"
    )
    keep: Literal["first", "last"] = "last" if rule == "last" else "first"
    dup = ordered.duplicated(["user_id", "item_id"], keep=keep).to_numpy()
    if not dup.any():
        return raw
    if rule == "error":
        pos = int(ordered["_pos"].to_numpy()[np.flatnonzero(dup)[0]])
        user, item = raw["user_id"].iloc[pos], raw["item_id"].iloc[pos]
        same = (raw["user_id"] == user).to_numpy() & (raw["item_id"] == item).to_numpy()
        earlier = int(np.flatnonzero(same)[0])
        raise DataError(
            f"{source}: {_where(raw, pos)}: user {user!r} already has item {item!r} "
            f"({_where(raw, earlier)}); {int(dup.sum())} duplicate (user, item) rows. Keep one "
            "per pair with duplicates: first (earliest) or last (latest)"
        )
    kept = np.sort(ordered["_pos"].to_numpy()[~dup])
    notes["duplicates_dropped"] = int(dup.sum())
    print(
        f"{source}: dropped {int(dup.sum())} duplicate (user, item) rows, kept the {rule}",
        file=sys.stderr,
    )
    return raw.iloc[kept].reset_index(drop=True)


def filter_min_rating(dataset: Dataset, min_rating: float) -> Dataset:
    """Explicit feedback as implicit: keep interactions rated ``>= min_rating`` (e.g. 4 of 5).

    Lower-rated rows are dropped before any split (neither history nor targets); their count is
    in ``notes["below_min_rating"]``. Users left with no interactions leave; items stay in the
    catalogue. A rating that is missing or not a number is an error.
    """
    inter = dataset.interactions
    if "rating" not in inter.columns:
        raise DataError(
            f"{dataset.name}: data.min_rating needs a rating column; this dataset has none"
        )
    ratings = inter["rating"].to_numpy()
    if np.isnan(ratings).any():
        first = int(np.flatnonzero(np.isnan(ratings))[0])
        user = dataset.users["user_id"].iloc[int(inter["user"].iloc[first])]
        raise DataError(f"{dataset.name}: a rating of user {user!r} is missing or not a number")
    keep = ratings >= min_rating
    if not keep.any():
        raise DataError(f"{dataset.name}: no rating is >= {min_rating}")
    kept = inter[keep]
    raw = _raw_ids(dataset, kept)
    notes = dict(dataset.notes, below_min_rating=int((~keep).sum()))
    return build_dataset(
        dataset.name,
        raw,
        dataset.items.set_index("item_id"),
        dataset.users.set_index("user_id"),
        has_timestamps=dataset.has_timestamps,
        text_fields=dataset.text_fields,
        notes=notes,
    )


def _raw_ids(dataset: Dataset, inter: pd.DataFrame) -> pd.DataFrame:
    """Interactions of ``dataset`` (a subset of its rows) back in original ids."""
    raw = pd.DataFrame(
        {
            "user_id": dataset.users["user_id"].to_numpy()[inter["user"].to_numpy()],
            "item_id": dataset.items["item_id"].to_numpy()[inter["item"].to_numpy()],
            "time": inter["time"].to_numpy(),
        }
    )
    if "rating" in inter.columns:
        raw["rating"] = inter["rating"].to_numpy()
    return raw


def k_core(dataset: Dataset, user_k: int = 5, item_k: int = 5) -> Dataset:
    """Iteratively drop users with < ``user_k`` and items with < ``item_k`` interactions, then
    remap ids. Items without interactions are dropped too."""
    inter = dataset.interactions
    while True:
        ucount = inter.groupby("user")["item"].transform("size")
        icount = inter.groupby("item")["user"].transform("size")
        keep = (ucount >= user_k) & (icount >= item_k)
        if keep.all():
            break
        inter = inter[keep]
    if inter.empty:
        raise DataError(f"{dataset.name}: {user_k}/{item_k}-core filtering left no interactions")
    raw = _raw_ids(dataset, inter)
    items = dataset.items.set_index("item_id")
    users = dataset.users.set_index("user_id")
    kept_items = items.loc[pd.unique(raw["item_id"])]
    return build_dataset(
        f"{dataset.name}-{user_k}core",
        raw,
        kept_items,
        users,
        has_timestamps=dataset.has_timestamps,
        text_fields=dataset.text_fields,
        notes=dataset.notes,
    )
