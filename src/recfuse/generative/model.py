"""A small decoder-only transformer over code tokens (nanoGPT-style), with a history cache.

A user's history is flattened into tokens: ``[BOS] c(i1,1) .. c(i1,L) c(i2,1) .. c(in,L)``; the
model is trained like a language model to predict every next token, so one pass teaches it to
generate the next item's code after every prefix of the history (as SASRec predicts the next
item at every position). At inference the history is encoded once; the few generated tokens
(one item's code) then attend to the cached history keys and values, so beam search costs
almost nothing beyond one pass over the history. The blocks are `recfuse.models.transformer.Block`
(pre-norm, FFN 4 × width), the same block SASRec uses.

Tokens: 0 = PAD, 1 = BOS, then every level's codes in turn (level l's code c is
``2 + offsets[l] + c``), so the same number at different levels is a different token.
"""

from __future__ import annotations

import torch
from torch import nn

from recfuse.models.transformer import KV, Block

PAD, BOS, FIRST_CODE = 0, 1, 2

#: per layer, the cached (keys, values) of the history, each [B, heads, T, head_dim]
Cache = list[KV]


class CodeTransformer(nn.Module):
    """GPT over code tokens.

    Args:
        vocab_size: 2 + total codes over all levels.
        n_positions: longest token sequence (history window plus one item).
        dim, layers, heads, dropout: the usual.
    """

    def __init__(
        self,
        vocab_size: int,
        n_positions: int,
        dim: int = 128,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.n_positions = n_positions
        self.token = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.position = nn.Embedding(n_positions, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            [Block(dim, heads, dropout, ffn=4 * dim) for _ in range(layers)]
        )
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.head.weight = self.token.weight  # tied, as in nanoGPT
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        # nanoGPT's small normal init: unit-variance embeddings would make the tied logits huge
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self,
        tokens: torch.Tensor,
        start: int = 0,
        past: Cache | None = None,
        past_ok: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Cache]:
        """Logits [B, T, vocab] for tokens [B, T] at positions ``start .. start + T - 1``.

        With ``past`` (a cached history of B users, from an earlier call) and ``past_ok`` (its
        non-padding mask [B, T_past]), ``tokens`` are [B * W, T]: W continuations per user,
        attending to their user's history. Returns the logits and this call's keys/values.
        """
        key_ok = tokens != PAD if past_ok is None else past_ok
        pos = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.drop(self.token(tokens) + self.position(pos))
        cache: Cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, key_ok, past[i] if past is not None else None)
            cache.append(kv)
        return self.head(self.ln(x)), cache
