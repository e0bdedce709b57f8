"""One transformer block for every sequence model here (SASRec, the generative code model).

nanoGPT-style and small on purpose: causal multi-head self-attention with a key-padding mask and
an optional cache of earlier keys/values (for cheap beam search), then a GELU feed-forward
network, each with a residual connection. Two layouts:

- ``norm="pre"`` (GPT-2, nanoGPT): ``x + attn(ln1(x))``, ``x + ffn(ln2(x))``; the model adds one
  final LayerNorm. recfuse's default for SASRec (1 head, FFN width = model width, as in the
  SASRec paper) and the generative model (FFN 4 × width).
- ``norm="post"`` (the original Transformer; RecBole's SASRec): ``ln1(x + attn(x))``,
  ``ln2(x + ffn(x))``. RecBole's SASRec is this with 2 heads and FFN 256 at width 64.

Padding: a key that is padding gets no attention weight from any query, so pad positions never
leak into real ones (LayerNorm and biases make a zero pad input a non-zero key). A query at a pad
position sees only itself (a row with no key would be NaN); its output is never used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: one block's cached (keys, values), each [B, heads, T, head_dim]
KV = tuple[torch.Tensor, torch.Tensor]


def attention_mask(key_ok: torch.Tensor) -> torch.Tensor:
    """Which keys each query may attend to: [B, 1, T, T] from the non-pad mask ``key_ok`` [B, T].

    Query i sees key j when j <= i (causal) and j is not padding; every query also sees itself.
    """
    t = key_ok.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=key_ok.device).tril()
    own = torch.eye(t, dtype=torch.bool, device=key_ok.device)
    return (causal & key_ok[:, None, None, :]) | own


class SelfAttention(nn.Module):
    """Causal multi-head self-attention; ``dim`` must be divisible by ``heads``."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, key_ok: torch.Tensor, past: KV | None = None
    ) -> tuple[torch.Tensor, KV]:
        """Attention output [B * W, T, dim] and this call's own (keys, values).

        x: [B * W, T, dim]; W continuations (beams) per cached history, W = 1 without a cache.
        key_ok: [B, T] non-pad positions of x without a cache; [B, T_past] of the cache with one.
        past: cached history keys/values, each [B, heads, T_past, head_dim].
        """
        bw, t, dim = x.shape
        q, k, v = (
            z.view(bw, t, self.heads, dim // self.heads).transpose(1, 2)
            for z in self.qkv(x).split(dim, dim=2)
        )
        if past is None:
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=attention_mask(key_ok),
                dropout_p=self.dropout if self.training else 0.0,
            )
            return self.proj(y.transpose(1, 2).reshape(bw, t, dim)), (k, v)
        y = _attend_after_cache(q, k, v, key_ok, past)
        return self.proj(y.reshape(bw, self.heads, t, -1).transpose(1, 2).reshape(bw, t, dim)), (
            k,
            v,
        )


def _attend_after_cache(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_ok: torch.Tensor, past: KV
) -> torch.Tensor:
    """Decoding: the W beams of a user share one cached history; attend to it by broadcasting.

    q, k, v: [B * W, heads, T, head_dim]; returns [B, W, heads, T, head_dim]. Broadcasting
    instead of copying the cache W times keeps beam search cheap.
    """
    k_past, v_past = past
    b, t = k_past.shape[0], q.shape[2]
    heads = q.shape[1]
    qb = q.view(b, q.shape[0] // b, heads, t, -1)
    kb, vb = k.view_as(qb), v.view_as(qb)
    scale = qb.shape[-1] ** -0.5
    to_past = torch.einsum("bwhtd,bhsd->bwhts", qb, k_past) * scale
    to_past = to_past.masked_fill(~key_ok[:, None, None, None, :], -torch.inf)
    to_new = torch.einsum("bwhtd,bwhsd->bwhts", qb, kb) * scale
    causal = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    to_new = to_new.masked_fill(~causal, -torch.inf)
    att = torch.cat([to_past, to_new], -1).softmax(-1)
    t_past = k_past.shape[2]
    return torch.einsum("bwhts,bhsd->bwhtd", att[..., :t_past], v_past) + torch.einsum(
        "bwhts,bwhsd->bwhtd", att[..., t_past:], vb
    )


class Block(nn.Module):
    """Self-attention then a feed-forward network, with residuals (see the module docstring).

    Args:
        dim: model width.
        heads: attention heads.
        dropout: on attention weights, on the attention output and after the FFN.
        ffn: hidden width of the feed-forward network.
        norm: ``pre`` or ``post`` LayerNorm layout.
        eps: LayerNorm epsilon (RecBole uses 1e-12).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        dropout: float,
        ffn: int,
        norm: str = "pre",
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if norm not in ("pre", "post"):
            raise ValueError(f"norm must be 'pre' or 'post', not {norm!r}")
        self.pre = norm == "pre"
        self.ln1, self.ln2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.attn = SelfAttention(dim, heads, dropout)
        self.drop = nn.Dropout(dropout)
        self.mlp = nn.Sequential(
            nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim), nn.Dropout(dropout)
        )

    def forward(
        self, x: torch.Tensor, key_ok: torch.Tensor, past: KV | None = None
    ) -> tuple[torch.Tensor, KV]:
        """x [B, T, dim] -> (x [B, T, dim], this block's keys/values); see `SelfAttention`."""
        if self.pre:
            y, kv = self.attn(self.ln1(x), key_ok, past)
            x = x + self.drop(y)
            return x + self.mlp(self.ln2(x)), kv
        y, kv = self.attn(x, key_ok, past)
        x = self.ln1(x + self.drop(y))
        return self.ln2(x + self.mlp(x)), kv
