"""SASRec (Kang & McAuley, 2018): a causal transformer over the item sequence.

Read top to bottom: item vectors come from an `ItemEncoder`; positions are learned; transformer
blocks (`recfuse.models.transformer.Block`) with causal self-attention that never attends to
padding; the hidden state at each position scores the next item against the same item table.

Default shape: pre-norm, 1 head, FFN width = model width (the paper's point-wise FFN), GELU.
RecBole's SASRec is ``norm="post", heads=2, ffn=256`` (LayerNorm on the input embeddings, no
final LayerNorm, no √dim embedding scale, LayerNorm eps 1e-12) — `SASRecNet` builds that too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recfuse.models.item_encoders import ItemEncoder
from recfuse.models.transformer import Block


class SASRecNet(nn.Module):
    """Args: encoder (its ``dim`` is the model width), max_len, blocks, heads, dropout, ffn
    (default: the width), norm (``pre`` or ``post``, see the module docstring)."""

    def __init__(
        self,
        encoder: ItemEncoder,
        max_len: int = 50,
        blocks: int = 2,
        heads: int = 1,
        dropout: float = 0.2,
        ffn: int | None = None,
        norm: str = "pre",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.max_len = max_len
        dim = encoder.dim
        self.pre = norm == "pre"
        eps = 1e-5 if self.pre else 1e-12
        self.position = nn.Embedding(max_len, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            [Block(dim, heads, dropout, ffn or dim, norm, eps) for _ in range(blocks)]
        )
        # pre-norm ends with a LayerNorm; post-norm (RecBole) starts with one on the input
        self.ln = nn.LayerNorm(dim, eps=eps)

    def forward(self, seq: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, L, dim] for left-padded item sequences ``seq`` [B, L].

        ``table`` is ``encoder()`` with one zero row appended for the padding index n_items.
        Pad positions' outputs are meaningless (they attend only to themselves) and unused.
        """
        key_ok = seq < self.encoder.n_items
        x = F.embedding(seq, table) * (self.encoder.dim**0.5 if self.pre else 1.0)
        x = x + self.position(torch.arange(seq.shape[1], device=seq.device))
        x = self.drop(x if self.pre else self.ln(x))
        for block in self.blocks:
            x, _ = block(x, key_ok)
        return self.ln(x) if self.pre else x
