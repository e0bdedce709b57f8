"""`Split`: train / valid / test interactions of one dataset, and the histories a model may see."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recfuse.atomic import atomic_path, write_json
from recfuse.errors import DataError

Stage = Literal["valid", "test"]


@dataclass
class Split:
    """Disjoint train / valid / test interaction frames (columns ``user``, ``item``, ``time``).

    At the validation stage a model sees the training interactions; at the test stage it sees
    training and validation interactions. `history` and `seen_matrix` give exactly that, so no
    component can reach into a later period by accident.
    """

    protocol: str
    seed: int
    n_users: int
    n_items: int
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    params: dict[str, object] = field(default_factory=dict)

    def visible(self, stage: Stage) -> pd.DataFrame:
        """Interactions a model may use when predicting ``stage`` targets, sorted by (user, time)."""
        if stage == "valid":
            return self.train
        if stage == "test":
            both = pd.concat([self.train, self.valid], ignore_index=True)
            return both.sort_values(["user", "time"], kind="stable").reset_index(drop=True)
        raise ValueError(f"stage must be 'valid' or 'test', not {stage!r}")

    def targets(self, stage: Stage) -> pd.DataFrame:
        return self.valid if stage == "valid" else self.test

    def seen_matrix(self, stage: Stage) -> sp.csr_matrix:
        """Binary user × item matrix of the interactions visible at ``stage``."""
        frame = self.visible(stage)
        data = np.ones(len(frame), dtype=np.float32)
        mat = sp.csr_matrix(
            (data, (frame["user"].to_numpy(), frame["item"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )
        mat.data[:] = 1.0  # duplicates summed by csr construction count once
        return mat

    def train_matrix(self) -> sp.csr_matrix:
        return self.seen_matrix("valid")

    def histories(self, stage: Stage) -> list[np.ndarray]:
        """Per user index, the time-ordered item indices visible at ``stage`` (may be empty)."""
        frame = self.visible(stage)
        users = frame["user"].to_numpy()
        items = frame["item"].to_numpy()
        bounds = np.searchsorted(users, np.arange(self.n_users + 1))
        return [items[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]

    def summary(self) -> dict[str, object]:
        return {
            "protocol": self.protocol,
            "seed": self.seed,
            "params": self.params,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
            "valid_users": int(self.valid["user"].nunique()),
            "test_users": int(self.test["user"].nunique()),
        }

    def save(self, folder: str | Path) -> None:
        """Write ``split.json`` and one Parquet file per part, each atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for part in ("train", "valid", "test"):
            with atomic_path(folder / f"split_{part}.parquet") as tmp:
                getattr(self, part).to_parquet(tmp)
        write_json(folder / "split.json", self.summary())

    @classmethod
    def load(cls, folder: str | Path) -> Split:
        folder = Path(folder)
        meta_path = folder / "split.json"
        if not meta_path.is_file():
            raise DataError(f"{meta_path}: no saved split here")
        meta = json.loads(meta_path.read_text())
        parts = {
            p: pd.read_parquet(folder / f"split_{p}.parquet") for p in ("train", "valid", "test")
        }
        return cls(
            meta["protocol"],
            int(meta["seed"]),
            int(meta["n_users"]),
            int(meta["n_items"]),
            parts["train"],
            parts["valid"],
            parts["test"],
            dict(meta.get("params") or {}),
        )
