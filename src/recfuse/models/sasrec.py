"""SASRec (Kang & McAuley, 2018): a causal transformer over the item sequence.

Read top to bottom: item vectors come from an `ItemEncoder`; positions are learned; pre-norm
blocks with causal self-attention; the hidden state at each position scores the next item against
the same item table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recfuse.models.item_encoders import ItemEncoder


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=2)
        q, k, v = (
            t.view(b, length, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v)
        )
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).reshape(b, length, dim))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.ffn(self.ln2(x))


class SASRecNet(nn.Module):
    """Args: encoder (its ``dim`` is the model width), max_len, blocks, heads, dropout."""

    def __init__(
        self,
        encoder: ItemEncoder,
        max_len: int = 50,
        blocks: int = 2,
        heads: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.max_len = max_len
        self.position = nn.Embedding(max_len, encoder.dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(encoder.dim, heads, dropout) for _ in range(blocks)])
        self.ln = nn.LayerNorm(encoder.dim)

    def forward(self, seq: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, L, dim] for left-padded item sequences ``seq`` [B, L].

        ``table`` is ``encoder()`` with one zero row appended for the padding index n_items.
        """
        not_pad = (seq < self.encoder.n_items).unsqueeze(-1)
        x = F.embedding(seq, table) * self.encoder.dim**0.5
        x = x + self.position(torch.arange(seq.shape[1], device=seq.device))
        x = self.drop(x) * not_pad
        for block in self.blocks:
            x = block(x) * not_pad
        return self.ln(x)
