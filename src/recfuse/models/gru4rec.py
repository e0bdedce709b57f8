"""GRU4Rec (Hidasi et al., 2016) trained like SASRec: next-item prediction at every position."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recfuse.models.item_encoders import ItemEncoder


class GRU4RecNet(nn.Module):
    """Args: encoder (its ``dim`` is the input width), hidden size, layers, dropout."""

    def __init__(
        self, encoder: ItemEncoder, max_len: int = 50, layers: int = 1, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.max_len = max_len
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(encoder.dim, encoder.dim, num_layers=layers, batch_first=True)
        self.out = nn.Linear(encoder.dim, encoder.dim)

    def forward(self, seq: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, L, dim] for left-padded sequences [B, L] (pads embed to zero)."""
        x = self.drop(F.embedding(seq, table))
        hidden, _ = self.gru(x)
        return self.out(hidden)
