"""RQ-VAE tokenizer: collisions resolved, reconstruction improves, codebooks stay in use."""

from __future__ import annotations

import numpy as np
import pytest

from recfuse.generative.rqvae import codebook_stats, collision_rate, resolve_collisions
from recfuse.generative.semantic_ids import (
    SemanticIds,
    TokenizerConfig,
    auto_codebook_size,
    fit_semantic_ids,
    random_semantic_ids,
)

#: stated floor: with k-means init and dead-code replacement, at least this share of each
#: level's codes is used by some item (collapse would leave a handful of codes in use)
USAGE_FLOOR = 0.5


def clustered_features(n: int = 800, clusters: int = 60, dim: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    return (centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, dim))).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def text_ids() -> SemanticIds:
    cfg = TokenizerConfig(codebook_size=16, steps=150, batch_size=256, log_every=10)
    return fit_semantic_ids({"text": clustered_features()}, None, cfg)


def test_resolution_makes_every_code_unique() -> None:
    codes = np.array([[1, 2], [1, 2], [3, 4], [1, 2], [3, 4], [0, 0]])
    assert collision_rate(codes) == pytest.approx(5 / 6)
    resolved = resolve_collisions(codes)
    assert resolved.shape == (6, 3)
    assert len(np.unique(resolved, axis=0)) == 6
    np.testing.assert_array_equal(resolved[:, :2], codes)  # the original levels are kept
    np.testing.assert_array_equal(resolved[:, 2], [0, 1, 0, 2, 1, 0])


def test_resolution_on_heavily_colliding_random_codes() -> None:
    codes = np.random.default_rng(3).integers(0, 3, (500, 2))  # only 9 distinct codes
    resolved = resolve_collisions(codes)
    assert collision_rate(codes) > 0.9
    assert len(np.unique(resolved, axis=0)) == len(codes)
    assert collision_rate(resolved) == 0.0


def test_reconstruction_loss_falls(text_ids: SemanticIds) -> None:
    losses = text_ids.recon_loss
    assert len(losses) >= 10
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2])


def test_codebook_usage_above_floor(text_ids: SemanticIds) -> None:
    assert min(text_ids.stats.usage) >= USAGE_FLOOR, text_ids.stats
    assert text_ids.stats.perplexity[0] > USAGE_FLOOR * 16
    assert len(np.unique(text_ids.codes, axis=0)) == len(text_ids.codes)


def test_cemg_fusion_with_text_image_and_collab() -> None:
    """The image path runs with a given image feature matrix; collab guidance is reported."""
    rng = np.random.default_rng(1)
    text = clustered_features(300, 20, 32)
    image = rng.normal(size=(300, 24)).astype(np.float32)
    collab = rng.normal(size=(300, 16)).astype(np.float32)
    cfg = TokenizerConfig(codebook_size=16, steps=20, batch_size=128, fusion_dim=32)
    ids = fit_semantic_ids({"text": text, "image": image}, collab, cfg)
    assert ids.kind == "cemg"
    assert set(ids.gate_weights) == {"image", "text", "collab"}
    assert sum(ids.gate_weights.values()) == pytest.approx(1.0, abs=1e-4)
    assert len(np.unique(ids.codes, axis=0)) == 300
    assert ids.summary()["collision_rate"] == ids.stats.collision_rate


def test_random_codes_and_stats() -> None:
    ids = random_semantic_ids(1000, levels=3, codebook_size=32, seed=0)
    assert ids.codes.shape == (1000, 4)
    assert len(np.unique(ids.codes, axis=0)) == 1000
    stats = codebook_stats(ids.raw_codes, 32)
    assert all(u == 1.0 for u in stats.usage)
    assert auto_codebook_size(4344) == 128 and auto_codebook_size(100) == 16
