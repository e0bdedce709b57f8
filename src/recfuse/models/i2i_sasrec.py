"""An embedding I2I whose item vectors come from a trained SASRec (issue 17's "item vectors from
a trained SASRec"): two items are similar when their learned ID vectors point the same way.

Each user's sequence is their edges sorted by time (a synthetic edge sits before the user's first
real one), and each next-item target's cross-entropy is weighted by its edge weight, so a
synthetic edge counts ``synthetic_weight`` of a real one and a dropped edge not at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recfuse.models.base import Recommender
from recfuse.models.i2i import EmbeddingI2I
from recfuse.models.sequential import SASRec, training_windows
from recfuse.models.training import TrainConfig
from recfuse.split import Split

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class SASRecI2I(EmbeddingI2I):
    """Cosine I2I on the item table of a `WeightedSASRec` fitted on the edges.

    The epoch is chosen by ``validate(self)``, the caller's validation I2I score of the current
    table (so the table is selected for the I2I task, on validation only); without ``validate``
    every epoch runs and the last table is kept.

    Args:
        dim, max_len, epochs, patience, lr, seed: the SASRec and its training (sliding windows).
        n_recent, decay: the triggers (see `I2IRecommender`).
    """

    name = "SASRecI2I"

    def __init__(
        self, dim: int = 64, max_len: int = 50, epochs: int = 50, patience: int = 5,
        lr: float = 0.002, seed: int = 0, n_recent: int = 1, decay: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__(dim, n_recent, decay, seed)
        self.max_len, self.epochs, self.patience, self.lr = max_len, epochs, patience, lr

    def fit(
        self, split: Split, edges: pd.DataFrame | None = None, validate: Any = None, **kwargs: Any
    ) -> SASRecI2I:
        Recommender.fit(self, split)
        frame = split.train if edges is None else edges
        train = TrainConfig(epochs=self.epochs, patience=self.patience if validate else None,
                            lr=self.lr, seed=self.seed, progress=False)  # fmt: skip
        net = WeightedSASRec(edge_sequences(frame, split.n_users), dim=self.dim,
                             max_len=self.max_len, windows="sliding", train=train)  # fmt: skip

        def table_score(model: Any) -> float:
            self.similarity_ = unit_table(model)
            return float(validate(self))

        net.fit(split, table_score if validate else None)
        self.similarity_ = unit_table(net)  # the best epoch's weights, restored by fit
        self.epochs_ = len(net.history_)
        return self


class WeightedSASRec(SASRec):
    """SASRec trained on given (items [n], weights [n]) sequences, one per user, with the
    cross-entropy of each next-item target weighted by that target's edge weight."""

    def __init__(self, sequences: list[tuple[np.ndarray, np.ndarray]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sequences = sequences

    def training_tensors(self, split: Split) -> Batch:
        """inputs, targets [W, max_len] (pad = n_items) and target weights [W, max_len]."""
        n_items = split.n_items
        kept = [(i, w) for i, w in self._sequences if len(i) >= 2]
        lengths = np.array([len(i) for i, _ in kept], dtype=np.int64)
        # windows over global positions, so a target's item and its weight are both lookups
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        positions = [s + np.arange(n) for s, n in zip(starts, lengths, strict=True)]
        _, x, y = training_windows(positions, self.max_len, int(lengths.sum()),
                                   self.training_stride())  # fmt: skip
        items = np.concatenate([i for i, _ in kept] + [np.array([n_items])]).astype(np.int64)
        weights = np.concatenate([w for _, w in kept] + [np.zeros(1)]).astype(np.float32)
        return torch.as_tensor(items[x]), torch.as_tensor(items[y]), torch.as_tensor(weights[y])

    def loss(self, batch: Batch) -> torch.Tensor:  # type: ignore[override]
        inputs, targets, weights = batch
        table = self.item_table()
        hidden = self.net_(inputs, table)
        keep = targets < self.n_items_
        losses = F.cross_entropy(hidden[keep] @ table[:-1].T, targets[keep], reduction="none")
        return (losses * weights[keep]).sum() / weights[keep].sum().clamp_min(1e-8)


def edge_sequences(edges: pd.DataFrame, n_users: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per user, (items [n], weights [n]) of their edges in time order (stable on ties)."""
    frame = edges.sort_values(["user", "time"], kind="stable")
    weight = frame["weight"] if "weight" in frame else pd.Series(1.0, index=frame.index)
    users = frame["user"].to_numpy()
    items, weights = frame["item"].to_numpy(np.int64), weight.to_numpy(np.float32)
    cuts = np.searchsorted(users, np.arange(n_users + 1))
    return [(items[a:b], weights[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


@torch.no_grad()
def unit_table(model: SASRec) -> np.ndarray:
    """A sequential model's item table as unit rows [n_items, dim] (no padding row)."""
    table = model.item_table()[:-1].cpu().numpy().astype(np.float32)
    return table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-8)
