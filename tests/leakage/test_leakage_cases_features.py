"""Audit tables from the real datasets, and the features built for them."""

from __future__ import annotations

import numpy as np
import pytest

from recfuse.audit.cases import load_audit_table
from recfuse.audit.features import morgan_fingerprints, tfidf_features
from recfuse.errors import ConfigError


def test_goodreads_genre_table() -> None:
    table = load_audit_table("goodreads-books", "author", "genre")
    assert table.task == "classification" and table.class_names == ["Fiction", "Nonfiction"]
    assert np.bincount(table.target).tolist() == [2167, 875]  # SOURCE.md counts, never both
    assert table.feature_kind == "tfidf" and table.smiles is None
    codes, names = table.group_labels(min_rows=2)
    assert len(names) > 100 and (codes == -1).sum() > 0  # single-book authors are not classes


def test_amazon_popularity_table_hides_the_brand_from_the_text() -> None:
    table = load_audit_table("amazon-scientific", "brand", "popularity")
    assert table.class_names == ["not popular", "popular"]
    brands = [g for g in table.groups if isinstance(g, str) and len(g) > 6]
    texts = table.texts or []
    # the text is built from title/description/categories only; a brand may still appear in a
    # title (that is content), but it is not appended as its own field
    assert not any(
        t.endswith(f". {b}") for t, b in zip(texts, table.groups, strict=True) if b in brands
    )


def test_unknown_target_column_names_the_columns() -> None:
    with pytest.raises(ConfigError, match="--target: 'nope' is not a column of goodreads-books"):
        load_audit_table("goodreads-books", "author", "nope")
    with pytest.raises(ConfigError, match="morgan needs SMILES"):
        load_audit_table("goodreads-books", "author", "genre", features="morgan")


def test_morgan_fingerprints_are_deterministic_and_sparse() -> None:
    smiles = ["CCO", "c1ccccc1O", "CCO", "not-a-smiles"]
    fp = morgan_fingerprints(smiles, n_bits=1024)
    assert fp.shape == (4, 1024)
    assert (fp[0] != fp[2]).nnz == 0  # same molecule, same bits
    assert 0 < fp[0].nnz < 20 and fp[3].nnz == 0
    assert set(np.unique(fp.data).tolist()) == {1.0}


def test_tfidf_vocabulary_comes_from_fit_rows_only() -> None:
    texts = ["alpha beta gamma", "alpha beta delta", "zeta zeta omega", "zeta omega"]
    x = tfidf_features(texts, fit_rows=np.array([0, 1]))
    assert x[2].nnz == 0 and x[3].nnz == 0  # their words were never seen in training rows
    assert x[0].nnz > 0


@pytest.mark.slow
def test_minilm_features_cached_and_same_recipe_as_higemine(tmp_path, monkeypatch) -> None:
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path))
    from recfuse.audit.features import minilm_features
    from recfuse.features.embed import embed

    texts = ["a dragon and a castle", "tax law for small firms"]
    emb = minilm_features(texts)
    assert emb.shape == (2, 384)
    assert np.allclose(np.linalg.norm(emb.toarray(), axis=1), 1.0, atol=1e-4)
    assert list(tmp_path.rglob("*.np[yz]"))  # cached on disk
    assert np.allclose(minilm_features(texts).toarray(), emb.toarray())
    # the audit's vectors are the one text-to-vector path's, uncached and batched otherwise
    own = embed(texts, "minilm", use_cache=False, batch_size=1)
    assert np.allclose(own, emb.toarray(), atol=1e-4)
