"""`ItemEncoder`: how a backbone sees the catalogue.

An item encoder maps the whole catalogue to vectors, ``forward() -> [n_items, dim]``. Backbones
(SASRec, GRU4Rec) look up their inputs in that table and score outputs against it (tied weights),
so swapping ID embeddings for frozen-model features, or fusing both, never touches the backbone.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
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


# --------------------------------------------------------------------------- frozen features


def standardize(features: torch.Tensor) -> torch.Tensor:
    """Per-dimension z-scores over items: [..., n_items, d] -> same shape.

    Hidden-state scales differ by orders of magnitude between layers (and a few "massive"
    dimensions dominate decoder states), so every layer enters its adapter on the same scale.
    """
    features = features.float()
    mean = features.mean(dim=-2, keepdim=True)
    std = features.std(dim=-2, keepdim=True)
    return (features - mean) / (std + 1e-6)


class FeatureAdapter(nn.Module):
    """A small trainable MLP from frozen features [n, d_in] to item vectors [n, dim]."""

    def __init__(self, d_in: int, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(d_in, dim), nn.GELU(), nn.Linear(dim, dim)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def _as_feature_buffer(features: torch.Tensor | Any, n_items: int, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(features, dtype=torch.float32)
    if tensor.shape[-2] != n_items:
        raise ValueError(f"{name}: features have {tensor.shape[-2]} rows, catalogue has {n_items}")
    return standardize(tensor)


class ReplacementEncoder(ItemEncoder):
    """Frozen features through a trainable adapter, and no ID table at all.

    Args:
        features: [n_items, d_in] frozen item features (kept as a non-trainable buffer).
        dim: item vector size.
    """

    has_id_table = False

    def __init__(self, features: torch.Tensor | Any, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        feats = torch.as_tensor(features)
        self.n_items, self.dim = int(feats.shape[0]), dim
        # persistent=False: features are inputs, not weights; checkpoints stay small
        self.register_buffer(
            "features", _as_feature_buffer(feats, self.n_items, "replacement"), persistent=False
        )
        self.adapter = FeatureAdapter(int(feats.shape[1]), dim, dropout)

    def forward(self) -> torch.Tensor:
        return self.adapter(self.features)


class GatedSum(nn.Module):
    """``g * a + (1 - g) * b`` with a per-item, per-dimension gate ``g = sigmoid(W [a; b])``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * dim, dim)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate(torch.cat([a, b], dim=-1)))
        return g * a + (1 - g) * b

    def mean_gate(self, a: torch.Tensor, b: torch.Tensor) -> float:
        with torch.no_grad():
            return float(torch.sigmoid(self.gate(torch.cat([a, b], dim=-1))).mean())


FUSION_MODES = ("concat", "sum", "gate")


class FusionEncoder(ItemEncoder):
    """ID embeddings fused with adapted frozen features.

    Modes: ``concat`` (``W [id; content]``), ``sum`` (``id + content``), ``gate``
    (`GatedSum`: a learned per-item gate between ID and content).

    Args:
        features: [n_items, d_in] frozen item features (a non-trainable buffer).
        dim: item vector size.
        mode: one of `FUSION_MODES`.
    """

    has_id_table = True

    def __init__(
        self, features: torch.Tensor | Any, dim: int, mode: str = "gate", dropout: float = 0.1
    ) -> None:
        super().__init__()
        if mode not in FUSION_MODES:
            raise ValueError(f"fusion mode {mode!r} is not one of {', '.join(FUSION_MODES)}")
        feats = torch.as_tensor(features)
        self.n_items, self.dim, self.mode = int(feats.shape[0]), dim, mode
        self.register_buffer(
            "features", _as_feature_buffer(feats, self.n_items, "fusion"), persistent=False
        )
        self.ids = IdEncoder(self.n_items, dim)
        self.adapter = FeatureAdapter(int(feats.shape[1]), dim, dropout)
        if mode == "concat":
            self.project = nn.Linear(2 * dim, dim)
        elif mode == "gate":
            self.fuse = GatedSum(dim)

    def content(self) -> torch.Tensor:
        return self.adapter(self.features)

    def forward(self) -> torch.Tensor:
        ids, content = self.ids(), self.content()
        if self.mode == "sum":
            return ids + content
        if self.mode == "concat":
            return self.project(torch.cat([ids, content], dim=-1))
        return self.fuse(ids, content)

    def report(self) -> dict[str, Any]:
        if self.mode != "gate":
            return {}
        return {"mean_id_gate": self.fuse.mean_gate(self.ids(), self.content())}


class StackedAdapters(nn.Module):
    """K independent `FeatureAdapter`-shaped MLPs applied as batched matmuls: [K, n, d] -> [K, n, dim]."""

    def __init__(self, k: int, d_in: int, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(k, d_in, dim) * d_in**-0.5)
        self.b1 = nn.Parameter(torch.zeros(k, 1, dim))
        self.w2 = nn.Parameter(torch.randn(k, dim, dim) * dim**-0.5)
        self.b2 = nn.Parameter(torch.zeros(k, 1, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = F.gelu(torch.baddbmm(self.b1, self.drop(features), self.w1))
        return torch.baddbmm(self.b2, hidden, self.w2)


class DFFEncoder(ItemEncoder):
    """Dual Feature Fusion: an adaptive mix of K layers' adapted features, gated with IDs.

    ``content = sum_k softmax(alpha)_k * adapter_k(layer_k)`` — the layer weights are positive
    and sum to one — and the item vector is ``GatedSum(id, content)``.

    Args:
        layer_features: [K, n_items, d_in] frozen features of K layers (a non-trainable buffer).
        dim: item vector size.
        layers: the layer numbers of the K slices (for the report).
    """

    has_id_table = True

    def __init__(
        self,
        layer_features: torch.Tensor | Any,
        dim: int,
        layers: list[int] | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        feats = torch.as_tensor(layer_features)
        if feats.dim() != 3:
            raise ValueError(f"DFF needs [K, n_items, d] features, got shape {tuple(feats.shape)}")
        k, n_items, d_in = (int(s) for s in feats.shape)
        self.n_items, self.dim = n_items, dim
        self.layers = list(layers) if layers is not None else list(range(k))
        if len(self.layers) != k:
            raise ValueError(f"{len(self.layers)} layer numbers for {k} feature slices")
        self.register_buffer(
            "features", _as_feature_buffer(feats, n_items, "dff"), persistent=False
        )
        self.ids = IdEncoder(n_items, dim)
        self.adapters = StackedAdapters(k, d_in, dim, dropout)
        self.layer_logits = nn.Parameter(torch.zeros(k))
        self.fuse = GatedSum(dim)

    def layer_weights(self) -> torch.Tensor:
        """Softmax-normalized layer weights [K] (they sum to one)."""
        return torch.softmax(self.layer_logits, dim=0)

    def content(self) -> torch.Tensor:
        adapted = self.adapters(self.features)  # [K, n, dim]
        return torch.einsum("k,knd->nd", self.layer_weights(), adapted)

    def forward(self) -> torch.Tensor:
        return self.fuse(self.ids(), self.content())

    def report(self) -> dict[str, Any]:
        weights = self.layer_weights().detach().tolist()
        return {
            "layer_weights": {
                f"layer{layer}": w for layer, w in zip(self.layers, weights, strict=True)
            },
            "mean_id_gate": self.fuse.mean_gate(self.ids(), self.content()),
        }
