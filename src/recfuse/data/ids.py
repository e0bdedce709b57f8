"""`IdMaps`: the original user and item ids behind a dataset's contiguous indices.

recfuse works on indices (user 0..n_users-1, item 0..n_items-1); people and files use raw ids
("196", "B00004Z5M1"). A run folder stores both maps (``ids/users.parquet``, ``ids/items.parquet``
with titles when the dataset has them) so a loaded model answers in raw ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recfuse.atomic import atomic_path
from recfuse.errors import DataError

if TYPE_CHECKING:
    from recfuse.data.dataset import Dataset

TITLE_COLUMNS = ("title", "name")


@dataclass
class IdMaps:
    """Index -> raw id arrays (and optional item titles), with raw id -> index lookups.

    Raw ids are compared as strings, so ``196`` and ``"196"`` name the same user.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    titles: np.ndarray | None = None
    _user_index: dict[str, int] | None = field(default=None, repr=False)
    _item_index: dict[str, int] | None = field(default=None, repr=False)

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> IdMaps:
        titles = None
        for col in TITLE_COLUMNS:
            if col in dataset.items.columns:
                titles = dataset.items[col].fillna("").astype(str).to_numpy()
                break
        return cls(dataset.users["user_id"].to_numpy(), dataset.items["item_id"].to_numpy(), titles)

    @classmethod
    def identity(cls, n_users: int, n_items: int) -> IdMaps:
        """Maps for data without raw ids: the raw id of index i is i."""
        return cls(np.arange(n_users), np.arange(n_items))

    def user_index(self, raw: Any) -> int:
        """Index of a raw user id; `DataError` naming the id when it is unknown."""
        if self._user_index is None:
            self._user_index = {str(u): i for i, u in enumerate(self.user_ids)}
        try:
            return self._user_index[str(raw)]
        except KeyError:
            raise DataError(f"user {raw!r} is not in this model's data") from None

    def item_indices(self, raws: list[Any]) -> np.ndarray:
        """Indices of raw item ids, int64 [len(raws)]; `DataError` naming the unknown ones."""
        if self._item_index is None:
            self._item_index = {str(i): n for n, i in enumerate(self.item_ids)}
        missing = [r for r in raws if str(r) not in self._item_index]
        if missing:
            shown = ", ".join(map(repr, missing[:5]))
            raise DataError(f"item(s) {shown} not in this model's catalogue")
        return np.array([self._item_index[str(r)] for r in raws], dtype=np.int64)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        items = pd.DataFrame({"item_id": self.item_ids})
        if self.titles is not None:
            items["title"] = self.titles
        for name, frame in (("users", pd.DataFrame({"user_id": self.user_ids})), ("items", items)):
            with atomic_path(folder / f"{name}.parquet") as tmp:
                frame.to_parquet(tmp, index=False)

    @classmethod
    def load(cls, folder: str | Path) -> IdMaps:
        folder = Path(folder)
        try:
            users = pd.read_parquet(folder / "users.parquet")
            items = pd.read_parquet(folder / "items.parquet")
        except FileNotFoundError as exc:
            raise DataError(f"{folder}: no id maps ({exc.filename} missing)") from None
        titles = items["title"].to_numpy() if "title" in items.columns else None
        return cls(users["user_id"].to_numpy(), items["item_id"].to_numpy(), titles)
