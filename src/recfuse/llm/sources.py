"""Where a job's prompt records come from: inline, a JSONL file, a dataset's items, a table, or
user histories (training period only, through the leakage guard)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from recfuse.data.readers import read_jsonl
from recfuse.errors import ConfigError, DataError
from recfuse.split import Split


@dataclass(frozen=True)
class PromptRecord:
    """One prompt's inputs: an id, the template's field values, and the (user, item)
    interactions the values were built from (checked against the split's training period)."""

    id: str
    fields: dict[str, Any]
    interactions: tuple[tuple[int, int], ...] = field(default_factory=tuple)


class SourceSpec(BaseModel):
    """The ``source:`` block of a job YAML.

    * ``inline``: ``records: [{id: ..., title: ...}, ...]``
    * ``jsonl``: ``path`` to a file of JSON objects, one per line
    * ``dataset_items``: the item table of ``dataset`` (id = item index)
    * ``table``: a table dataset (``load_table``), id from ``id_field``
    * ``user_histories``: per user of ``dataset`` split by ``protocol``/``seed``, the field
      ``history`` lists the titles (``item_field``) of the last ``max_items`` training items
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["inline", "jsonl", "dataset_items", "table", "user_histories"] = "inline"
    records: list[dict[str, Any]] = Field(default_factory=list)
    path: str | None = None
    dataset: str | None = None
    id_field: str = "id"
    limit: int | None = Field(default=None, ge=1)
    protocol: str = "leave_one_out"
    seed: int = 0
    max_items: int = Field(default=20, ge=1)
    item_field: str = "title"

    def load(self, base_dir: Path | None = None) -> tuple[list[PromptRecord], Split | None]:
        """The records (at most ``limit``) and, for ``user_histories``, the split they obey."""
        if self.kind == "user_histories":
            return self._user_histories()
        if self.kind == "inline":
            rows = self.records
        elif self.kind == "jsonl":
            rows = self._jsonl(base_dir)
        else:
            rows = self._table_rows()
        rows = rows[: self.limit] if self.limit else rows
        records = []
        for index, row in enumerate(rows):
            if self.kind == "dataset_items":
                rid = str(index)
            elif self.id_field in row:
                rid = str(row[self.id_field])
            else:
                raise ConfigError(
                    f"source.records[{index}]: no {self.id_field!r} field (source.id_field)"
                )
            records.append(PromptRecord(rid, dict(row)))
        seen: set[str] = set()
        for record in records:
            if record.id in seen:
                raise ConfigError(f"source: duplicate record id {record.id!r}")
            seen.add(record.id)
        return records, None

    def _jsonl(self, base_dir: Path | None) -> list[dict[str, Any]]:
        if not self.path:
            raise ConfigError("source.path: required for kind jsonl")
        path = Path(self.path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise DataError(f"source.path: {path} does not exist")
        return read_jsonl(path, allow_empty=True)

    def _table_rows(self) -> list[dict[str, Any]]:
        if not self.dataset:
            raise ConfigError(f"source.dataset: required for kind {self.kind}")
        if self.kind == "dataset_items":
            from recfuse.data import load_dataset

            frame = load_dataset(self.dataset).items
        else:
            from recfuse.data import load_table

            frame = load_table(self.dataset)
        if self.limit:
            frame = frame.head(self.limit)
        return [
            {k: (None if _is_missing(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")
        ]

    def _user_histories(self) -> tuple[list[PromptRecord], Split]:
        from recfuse.data import load_dataset
        from recfuse.llm.leakage import history_for_prompt
        from recfuse.split import make_split

        if not self.dataset:
            raise ConfigError("source.dataset: required for kind user_histories")
        dataset = load_dataset(self.dataset)
        if self.item_field not in dataset.items.columns:
            raise ConfigError(
                f"source.item_field: {self.item_field!r} is not an item column of {self.dataset}"
            )
        split = make_split(dataset, self.protocol, self.seed)
        titles = dataset.items[self.item_field].fillna("").astype(str).to_numpy()
        records = []
        for user in range(split.n_users):
            items = history_for_prompt(split, user, "train", self.max_items)
            if len(items) == 0:
                continue
            records.append(
                PromptRecord(
                    str(user),
                    {"user": user, "history": "; ".join(titles[items])},
                    tuple((user, int(i)) for i in items),
                )
            )
            if self.limit and len(records) >= self.limit:
                break
        return records, split


def _is_missing(value: Any) -> bool:
    try:
        return bool(value != value)  # NaN is the only value unequal to itself
    except (TypeError, ValueError):
        return False
