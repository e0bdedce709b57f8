"""Semantic IDs: item features -> (fusion) -> RQ-VAE -> unique codes, three ways.

- `fit_semantic_ids(content, collab)`: CEMG. The collaborative-guided fusion and the RQ-VAE are
  trained together; the decoder reconstructs the content features *and* the collaborative
  embedding, so the codes keep both kinds of similarity.
- `fit_semantic_ids(content, None)`: TIGER-style text-only IDs (RQ-VAE on the content alone).
- `random_semantic_ids`: random codes of the same shape (the ablation: what the generative model
  achieves when codes carry no similarity at all).

All three report the collision rate *before* resolution and resolve collisions with an extra
level, so every item has a unique code.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from recfuse.errors import ConfigError
from recfuse.generative.fusion import CollaborativeGuidedFusion
from recfuse.generative.rqvae import RQVAE, CodebookStats, codebook_stats, resolve_collisions
from recfuse.models.training import resolve_device, seed_everything


def auto_codebook_size(n_items: int) -> int:
    """K for a catalogue: the power of two at or above sqrt(n_items), within [16, 256].

    With L = 3 levels this leaves K^3 >> n_items (few collisions) while every first-level code
    still covers sqrt(n_items) items on average, enough for the generative model to learn it.
    """
    return int(min(256, max(16, 2 ** math.ceil(math.log2(math.sqrt(max(n_items, 1)))))))


@dataclass
class TokenizerConfig:
    """RQ-VAE (and fusion) settings. ``codebook_size=None`` picks `auto_codebook_size`."""

    levels: int = 3
    codebook_size: int | None = None
    latent_dim: int = 32
    hidden: tuple[int, ...] = (256, 128)
    fusion_dim: int = 128
    steps: int = 3000
    batch_size: int = 512
    lr: float = 1e-3
    collab_weight: float = 1.0
    commitment: float = 0.25
    kmeans_iters: int = 10
    dead_code_threshold: float = 2.0
    seed: int = 0
    max_seconds: float | None = None
    log_every: int = 50
    progress: bool = False
    device: str = "cpu"


@dataclass
class SemanticIds:
    """Codes of a catalogue and how they were made.

    Attributes:
        kind: ``cemg``, ``text`` or ``random``.
        codes: unique codes after resolution, int [n_items, L + 1].
        raw_codes: quantizer codes before resolution, int [n_items, L].
        codebook_size: K.
        stats: usage, perplexity and collision rate of ``raw_codes``.
        recon_loss: reconstruction loss every ``log_every`` steps (empty for random codes).
        seconds: wall time to produce the codes.
        gate_weights: mean fusion gate weight per source (CEMG only).
    """

    kind: str
    codes: np.ndarray
    raw_codes: np.ndarray
    codebook_size: int
    stats: CodebookStats
    recon_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    gate_weights: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """JSON-ready summary (no code arrays)."""
        return {
            "kind": self.kind,
            "levels": int(self.raw_codes.shape[1]),
            "codebook_size": self.codebook_size,
            "disambiguation_size": int(self.codes[:, -1].max() + 1),
            **self.stats.as_dict(),
            "recon_loss_first": self.recon_loss[0] if self.recon_loss else None,
            "recon_loss_last": self.recon_loss[-1] if self.recon_loss else None,
            "seconds": self.seconds,
            "gate_weights": self.gate_weights,
        }


def standardize(x: np.ndarray) -> torch.Tensor:
    """Centre and divide by the global standard deviation (keeps the geometry, fixes the scale
    so content and collaborative reconstruction errors are comparable)."""
    x = np.asarray(x, dtype=np.float32)
    x = x - x.mean(0, keepdims=True)
    return torch.as_tensor(x / max(float(x.std()), 1e-8))


def fit_semantic_ids(
    content: dict[str, np.ndarray],
    collab: np.ndarray | None = None,
    config: TokenizerConfig | None = None,
) -> SemanticIds:
    """Train the tokenizer and return unique item codes.

    Args:
        content: name -> feature matrix [n_items, d_m] (``text``; ``image`` where a dataset has
            image features).
        collab: collaborative item embeddings [n_items, d_c] learned on the training split only,
            or None for text-only (TIGER-style) IDs.
        config: tokenizer settings.
    """
    cfg = config or TokenizerConfig()
    if not content:
        raise ConfigError("semantic IDs need at least one content feature matrix")
    names = sorted(content)
    n_items = len(content[names[0]])
    if any(len(content[n]) != n_items for n in names) or (
        collab is not None and len(collab) != n_items
    ):
        raise ConfigError("content and collaborative features must have one row per item")
    seed_everything(cfg.seed)
    started = time.perf_counter()
    size = cfg.codebook_size or auto_codebook_size(n_items)
    dev = resolve_device(cfg.device)
    inputs = {n: standardize(content[n]).to(dev) for n in names}
    content_target = torch.cat([inputs[n] for n in names], 1)
    collab_t = standardize(collab).to(dev) if collab is not None else None
    fusion: CollaborativeGuidedFusion | None = None
    if collab_t is None:
        out_dim = in_dim = content_target.shape[1]
    else:
        fusion = CollaborativeGuidedFusion(
            {n: inputs[n].shape[1] for n in names}, collab_t.shape[1], cfg.fusion_dim
        )
        in_dim, out_dim = cfg.fusion_dim, content_target.shape[1] + collab_t.shape[1]
    rqvae = RQVAE(
        in_dim,
        out_dim,
        latent_dim=cfg.latent_dim,
        hidden=cfg.hidden,
        levels=cfg.levels,
        codebook_size=size,
        kmeans_iters=cfg.kmeans_iters,
        dead_code_threshold=cfg.dead_code_threshold,
        commitment=cfg.commitment,
    ).to(dev)
    if fusion is not None:
        fusion.to(dev)
    params = list(rqvae.parameters()) + (list(fusion.parameters()) if fusion else [])
    optimizer = torch.optim.AdamW(params, lr=cfg.lr)

    def encoder_input(idx: torch.Tensor) -> torch.Tensor:
        if fusion is None:
            return content_target[idx]
        assert collab_t is not None
        return fusion({n: inputs[n][idx] for n in names}, collab_t[idx])

    def losses(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        recon, _, commit = rqvae(encoder_input(idx))
        width = content_target.shape[1]
        rec = F.mse_loss(recon[:, :width], content_target[idx])
        if collab_t is not None:
            rec = rec + cfg.collab_weight * F.mse_loss(recon[:, width:], collab_t[idx])
        return rec, commit

    everything = torch.arange(n_items, device=dev)
    rqvae.train()
    with torch.no_grad():
        losses(everything)  # k-means initialisation of every level on the whole catalogue
    generator = torch.Generator().manual_seed(cfg.seed)
    history: list[float] = []
    bar = tqdm(range(cfg.steps), desc="rq-vae", disable=not cfg.progress)
    for step in bar:
        idx = torch.randint(0, n_items, (min(cfg.batch_size, n_items),), generator=generator).to(
            dev
        )
        rec, commit = losses(idx)
        optimizer.zero_grad(set_to_none=True)
        (rec + commit).backward()
        optimizer.step()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            history.append(float(rec.detach()))
            bar.set_postfix(rec=f"{history[-1]:.4f}")
        if cfg.max_seconds is not None and time.perf_counter() - started > cfg.max_seconds:
            break
    with torch.no_grad():
        if fusion is not None:
            fusion.eval()
        raw = rqvae.encode(encoder_input(everything)).cpu().numpy()
    return SemanticIds(
        kind="text" if fusion is None else "cemg",
        codes=resolve_collisions(raw),
        raw_codes=raw,
        codebook_size=size,
        stats=codebook_stats(raw, size),
        recon_loss=history,
        seconds=time.perf_counter() - started,
        gate_weights=dict(fusion.last_weights) if fusion is not None else {},
    )


def random_semantic_ids(
    n_items: int, levels: int = 3, codebook_size: int | None = None, seed: int = 0
) -> SemanticIds:
    """Uniformly random codes [n_items, levels] (then resolved): the no-semantics ablation."""
    started = time.perf_counter()
    size = codebook_size or auto_codebook_size(n_items)
    raw = np.random.default_rng(seed).integers(0, size, (n_items, levels))
    return SemanticIds(
        kind="random",
        codes=resolve_collisions(raw),
        raw_codes=raw,
        codebook_size=size,
        stats=codebook_stats(raw, size),
        seconds=time.perf_counter() - started,
    )


def config_dict(cfg: TokenizerConfig) -> dict[str, object]:
    """The config as a JSON-ready dict."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}
