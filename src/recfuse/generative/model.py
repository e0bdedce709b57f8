"""A small decoder-only transformer over code tokens (nanoGPT-style), with a history cache.

A user's history is flattened into tokens: ``[BOS] c(i1,1) .. c(i1,L) c(i2,1) .. c(in,L)``; the
model is trained like a language model to predict every next token, so one pass teaches it to
generate the next item's code after every prefix of the history (as SASRec predicts the next
item at every position). At inference the history is encoded once; the few generated tokens
(one item's code) then attend to the cached history keys and values, so beam search costs
almost nothing beyond one pass over the history.

Tokens: 0 = PAD, 1 = BOS, then every level's codes in turn (level l's code c is
``2 + offsets[l] + c``), so the same number at different levels is a different token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAD, BOS, FIRST_CODE = 0, 1, 2

#: per layer, the cached (keys, values) of the history, each [B, heads, T, head_dim]
Cache = list[tuple[torch.Tensor, torch.Tensor]]


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        key_ok: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Causal self-attention, optionally after a cached history.

        x: [B * W, T, dim] — W continuations (beams) per cached history, W = 1 without a cache.
        key_ok: [B, T_past] non-padding keys of the cached history (ignored without a cache), or
            [B, T] for x itself without a cache.
        past: cached history keys/values, each [B, heads, T_past, head_dim].
        Returns y [B * W, T, dim] and this call's own (keys, values) [B * W, heads, T, head_dim].
        """
        bw, t, dim = x.shape
        q, k, v = (
            z.view(bw, t, self.heads, dim // self.heads).transpose(1, 2)
            for z in self.qkv(x).split(dim, dim=2)
        )
        if past is None:
            causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            own = torch.eye(t, dtype=torch.bool, device=x.device)
            # a padded query may see no key at all; letting it see itself avoids NaN rows
            mask = (causal & key_ok[:, None, None, :]) | own
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
            )
            return self.proj(y.transpose(1, 2).reshape(bw, t, dim)), (k, v)
        # Decoding: the W beams of a user share one cached history. Attending to it by
        # broadcasting (instead of copying the cache W times) keeps beam search cheap.
        k_past, v_past = past
        b = k_past.shape[0]
        qb = q.view(b, bw // b, self.heads, t, -1)
        kb, vb = k.view_as(qb), v.view_as(qb)
        scale = qb.shape[-1] ** -0.5
        to_past = torch.einsum("bwhtd,bhsd->bwhts", qb, k_past) * scale
        to_past = to_past.masked_fill(~key_ok[:, None, None, None, :], -torch.inf)
        to_new = torch.einsum("bwhtd,bwhsd->bwhts", qb, kb) * scale
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        to_new = to_new.masked_fill(~causal, -torch.inf)
        att = torch.cat([to_past, to_new], -1).softmax(-1)
        t_past = k_past.shape[2]
        y = torch.einsum("bwhts,bhsd->bwhtd", att[..., :t_past], v_past) + torch.einsum(
            "bwhts,bwhsd->bwhtd", att[..., t_past:], vb
        )
        return self.proj(y.reshape(bw, self.heads, t, -1).transpose(1, 2).reshape(bw, t, dim)), (
            k,
            v,
        )


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )

    def forward(
        self, x: torch.Tensor, key_ok: torch.Tensor, past: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        y, kv = self.attn(self.ln1(x), key_ok, past)  # type: ignore[arg-type]
        x = x + y
        return x + self.mlp(self.ln2(x)), kv


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
        self.blocks = nn.ModuleList([Block(dim, heads, dropout) for _ in range(layers)])
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
