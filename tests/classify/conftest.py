"""Shared fixtures for the classify tests: one thread, a per-session cache, a small real slice."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

from recfuse.classify.labels import GenreLabels
from recfuse.classify.pipeline import BookCorpus

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def classify_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every embedding a test computes is cached under a per-session temp folder."""
    folder = str(tmp_path_factory.mktemp("recfuse-cache"))
    old = os.environ.get("RECFUSE_CACHE")
    os.environ["RECFUSE_CACHE"] = folder
    yield folder
    if old is None:
        os.environ.pop("RECFUSE_CACHE", None)
    else:
        os.environ["RECFUSE_CACHE"] = old


@pytest.fixture(scope="session")
def booklyn_slice() -> BookCorpus:
    """The first 40 booklyn-books rows with real MiniLM embeddings of blurbs and reviews."""
    from recfuse.classify.pipeline import load_corpus

    return load_corpus("booklyn-books", "minilm", limit=40)


def synthetic_corpus(n: int = 240, n_genres: int = 6, d: int = 16, seed: int = 0) -> BookCorpus:
    """A separable synthetic corpus for control-flow tests (no model, no data files).

    Genre g is signalled by feature g; Level 1 = fiction for genres 0-2, plus noise features.
    """
    rng = np.random.default_rng(seed)
    level2 = np.zeros((n, n_genres), dtype=np.uint8)
    first = rng.integers(0, n_genres, n)
    level2[np.arange(n), first] = 1
    second = rng.integers(0, n_genres, n)
    level2[np.arange(n), second] |= (rng.random(n) < 0.3).astype(np.uint8)
    level1 = (first < n_genres // 2).astype(np.int8)
    emb = rng.normal(0, 0.3, (n, d)).astype(np.float32)
    emb[:, :n_genres] += 2.0 * level2
    emb[:, n_genres] += 2.0 * level1
    table = pd.DataFrame({"book_id": np.arange(n), "title": [f"book {i}" for i in range(n)]})
    labels = GenreLabels(
        "synthetic", np.arange(n), level1, level2, tuple(f"g{j}" for j in range(n_genres)), False
    )
    label_emb = rng.normal(size=(2 + n_genres, d)).astype(np.float32)
    authors: list[object] = [f"author {i // 2}" for i in range(n)]
    blurbs = [
        f"blurb {i} " + " ".join(f"word{j}" for j in np.flatnonzero(level2[i])) for i in range(n)
    ]
    return BookCorpus("synthetic", table, labels, blurbs, emb, label_emb, authors)


@pytest.fixture
def make_corpus():
    """Factory for `synthetic_corpus` (tests have no package, so they take it as a fixture)."""
    return synthetic_corpus
