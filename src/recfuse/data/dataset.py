"""`Dataset`: interactions plus item and user side tables, with contiguous integer ids."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recfuse.errors import DataError

INTERACTION_COLUMNS = ("user", "item", "time")


@dataclass(frozen=True)
class Dataset:
    """An interaction dataset with contiguous ids.

    Attributes:
        name: dataset name.
        interactions: columns ``user`` (int64 in [0, n_users)), ``item`` (int64 in [0, n_items)),
            ``time`` (int64; a Unix timestamp, or the position in the user's sequence when
            ``has_timestamps`` is False). Sorted by (user, time).
        items: one row per item index (0..n_items-1) with ``item_id`` (the original id) and text
            fields such as ``title`` or ``description``.
        users: one row per user index with ``user_id`` and any user attributes.
        has_timestamps: whether ``time`` is a real clock (False: per-user order only).
        text_fields: which columns of ``items`` hold item text, in the order a template uses them.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    has_timestamps: bool = False
    text_fields: tuple[str, ...] = field(default_factory=tuple)

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
) -> Dataset:
    """Remap raw ids to contiguous indices and attach side tables.

    Args:
        raw: columns ``user_id``, ``item_id`` and ``time`` with the original ids.
        items: optional side table indexed by original ``item_id``; items that appear only here
            are kept (they can be recommended even without interactions).
        users: optional side table indexed by original ``user_id``.
    """
    if raw.empty:
        raise DataError(f"{source}: no interactions")
    for col in ("user_id", "item_id", "time"):
        if col not in raw.columns:
            raise DataError(f"{source}: missing column {col!r}")
    raw = raw.dropna(subset=["user_id", "item_id"])
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
    return Dataset(name, inter, item_table, user_table, has_timestamps, text_fields)


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
    raw = pd.DataFrame(
        {
            "user_id": dataset.users["user_id"].to_numpy()[inter["user"].to_numpy()],
            "item_id": dataset.items["item_id"].to_numpy()[inter["item"].to_numpy()],
            "time": inter["time"].to_numpy(),
        }
    )
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
    )
