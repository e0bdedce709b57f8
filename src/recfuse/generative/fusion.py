"""Collaborative-guided gated fusion of content features (CEMG's first stage).

Each source (text, image when a dataset has one, and the collaborative embedding) is projected
to a common width. A gate reads all projected sources together, so the collaborative embedding
steers how much of each content source passes, per item and per dimension:

    z_m = LayerNorm(W_m x_m)                    for m in content sources and "collab"
    a   = softmax_m(G [z_text; z_image; z_collab])   weights [N, M, dim], summing to 1 over m
    fused = sum_m a_m * z_m

The fusion has no loss of its own: it is trained jointly with the RQ-VAE, whose decoder must
reconstruct both the content features and the collaborative embedding from the quantized fused
vector, so the codes keep content and collaborative similarity (see `semantic_ids`).
"""

from __future__ import annotations

import torch
from torch import nn

from recfuse.errors import ConfigError

COLLAB = "collab"


class CollaborativeGuidedFusion(nn.Module):
    """Gate content sources with collaborative guidance.

    Args:
        content_dims: name -> feature size of each content source, e.g. ``{"text": 384}`` or
            ``{"text": 384, "image": 512}``.
        collab_dim: size of the collaborative item embedding.
        dim: fused width.
    """

    def __init__(self, content_dims: dict[str, int], collab_dim: int, dim: int = 128) -> None:
        super().__init__()
        if not content_dims:
            raise ConfigError("fusion needs at least one content source (e.g. text)")
        if COLLAB in content_dims:
            raise ConfigError(f"{COLLAB!r} is reserved for the collaborative embedding")
        self.sources = [*content_dims, COLLAB]
        self.dim = dim
        dims = {**content_dims, COLLAB: collab_dim}
        self.project = nn.ModuleDict(
            {name: nn.Sequential(nn.Linear(d, dim), nn.LayerNorm(dim)) for name, d in dims.items()}
        )
        self.gate = nn.Linear(dim * len(self.sources), dim * len(self.sources))
        self.last_weights: dict[str, float] = {}

    def forward(self, content: dict[str, torch.Tensor], collab: torch.Tensor) -> torch.Tensor:
        """Fused item vectors [N, dim] from content features {name: [N, d_m]} and collab [N, d_c]."""
        missing = set(self.sources) - {*content, COLLAB}
        if missing:
            raise ConfigError(f"fusion input lacks content source(s): {', '.join(sorted(missing))}")
        inputs = {**content, COLLAB: collab}
        z = torch.stack([self.project[name](inputs[name]) for name in self.sources], 1)  # [N,M,d]
        logits = self.gate(z.flatten(1)).view_as(z)
        weights = logits.softmax(dim=1)
        # mean gate weight per source, for the run report (how much collab guidance passes)
        self.last_weights = {
            name: float(w)
            for name, w in zip(self.sources, weights.detach().mean((0, 2)), strict=True)
        }
        return (weights * z).sum(1)
