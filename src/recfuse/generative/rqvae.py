"""RQ-VAE tokenizer: an MLP encoder, a residual vector quantizer (L levels × K codes), a decoder.

The quantizer is vector-quantize-pytorch's `ResidualVQ`: its codebooks are initialised by k-means
on the first batch, updated by exponential moving averages (more stable than learning them by
gradient, the usual cause of codebook collapse in RQ-VAE reproductions) and any code whose EMA
usage falls below ``dead_code_threshold`` is replaced by a random input vector of the batch. We
use the library rather than our own quantizer because it already carries these three remedies,
tested and maintained; ours would only re-implement them.

Besides the module, this file holds what a tokenizer is judged on: per-level usage and
perplexity, the collision rate, and the resolution of collisions into unique codes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from vector_quantize_pytorch import ResidualVQ


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers with SiLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.extend([nn.SiLU(), nn.Dropout(dropout)])
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """Encode a vector, quantize it residually into L codes, decode a reconstruction.

    Args:
        in_dim: input size.
        out_dim: reconstruction size (the decoder may reconstruct more than its input, e.g. the
            text feature and the collaborative embedding of a fused vector).
        latent_dim: size of the quantized latent.
        hidden: encoder hidden sizes (mirrored by the decoder).
        levels: L, the number of residual quantizers.
        codebook_size: K, codes per level.
        kmeans_iters: k-means iterations for the first-batch codebook initialisation.
        dead_code_threshold: EMA usage below which a code is replaced (0 disables).
        commitment: weight of the commitment loss.
        decay: EMA decay of the codebooks.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int | None = None,
        latent_dim: int = 32,
        hidden: tuple[int, ...] = (256, 128),
        levels: int = 3,
        codebook_size: int = 256,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 2.0,
        commitment: float = 0.25,
        decay: float = 0.99,
    ) -> None:
        super().__init__()
        out_dim = out_dim or in_dim
        self.levels, self.codebook_size = levels, codebook_size
        self.encoder = mlp([in_dim, *hidden, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), out_dim])
        self.quantizer = ResidualVQ(
            dim=latent_dim,
            num_quantizers=levels,
            codebook_size=codebook_size,
            kmeans_init=True,
            kmeans_iters=kmeans_iters,
            threshold_ema_dead_code=dead_code_threshold,
            commitment_weight=commitment,
            decay=decay,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (reconstruction [N, out_dim], codes [N, L], commitment loss scalar)."""
        latent = self.encoder(x)
        quantized, codes, commit = self.quantizer(latent)
        return self.decoder(quantized), codes, commit.sum()

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes [N, L] of inputs [N, in_dim] (eval mode: no codebook updates)."""
        was_training = self.training
        self.eval()
        _, codes, _ = self.quantizer(self.encoder(x))
        self.train(was_training)
        return codes


@dataclass
class CodebookStats:
    """How well the codebooks are used.

    Attributes:
        usage: per level, the fraction of the K codes that at least one item uses.
        perplexity: per level, exp(entropy) of the code distribution over items (K at best).
        collision_rate: fraction of items whose L-level code is shared with another item.
        unique_codes: number of distinct L-level codes.
    """

    usage: list[float]
    perplexity: list[float]
    collision_rate: float
    unique_codes: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def codebook_stats(codes: np.ndarray, codebook_size: int) -> CodebookStats:
    """Usage, perplexity and collisions of codes [n_items, L] drawn from K=codebook_size codes."""
    codes = np.asarray(codes)
    usage, perplexity = [], []
    for level in range(codes.shape[1]):
        counts = np.bincount(codes[:, level], minlength=codebook_size)
        p = counts[counts > 0] / counts.sum()
        usage.append(float((counts > 0).sum() / codebook_size))
        perplexity.append(float(np.exp(-(p * np.log(p)).sum())))
    return CodebookStats(usage, perplexity, collision_rate(codes), len(np.unique(codes, axis=0)))


def collision_rate(codes: np.ndarray) -> float:
    """Fraction of items [n_items, L] whose code row also belongs to another item."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return float((counts[inverse.reshape(-1)] > 1).mean())


def resolve_collisions(codes: np.ndarray) -> np.ndarray:
    """Append a disambiguation level so every item's code is unique (TIGER's remedy).

    Items sharing an L-level code get 0, 1, 2, ... (in item order) at level L+1; items without a
    collision get 0. The extra level is always added, so code length does not depend on luck.

    Args:
        codes: int array [n_items, L].
    Returns:
        int array [n_items, L + 1] with unique rows.
    """
    codes = np.asarray(codes, dtype=np.int64)
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    group_sorted = inverse[order]
    starts = np.r_[0, np.flatnonzero(np.diff(group_sorted)) + 1]
    first_of_group = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    extra = np.empty(len(codes), dtype=np.int64)
    extra[order] = np.arange(len(order)) - first_of_group
    return np.concatenate([codes, extra[:, None]], axis=1)
