"""`ItemEncoder`: how a backbone sees the catalogue.

An item encoder maps the whole catalogue to vectors, ``forward() -> [n_items, dim]``. Backbones
(SASRec, GRU4Rec) look up their inputs in that table and score outputs against it (tied weights),
so swapping ID embeddings for frozen-model features, or fusing both, never touches the backbone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ItemEncoder(nn.Module):
    """Base class. Subclasses set ``n_items`` and ``dim`` and implement ``forward``."""

    n_items: int
    dim: int
    #: whether the encoder owns a trainable per-item ID table
    has_id_table: bool = False

    def forward(self) -> torch.Tensor:  # pragma: no cover - abstract
        """All item vectors, shape [n_items, dim]."""
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        """Learned quantities worth reporting (e.g. layer weights); empty by default."""
        return {}


class IdEncoder(ItemEncoder):
    """A trainable ID embedding per item: the classic collaborative baseline."""

    has_id_table = True

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.n_items, self.dim = n_items, dim
        self.embedding = nn.Embedding(n_items, dim)
        nn.init.normal_(self.embedding.weight, std=dim**-0.5)

    def forward(self) -> torch.Tensor:
        return self.embedding.weight
