"""The fast exact cosine k-NN equals its naive reference, ties and duplicates included."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from recfuse.audit.neighbours import cosine_top_k, cosine_top_k_naive, distinct_rows


def _binary_with_duplicates(rng: np.random.Generator, n: int, d: int) -> sp.csr_matrix:
    """Rows drawn from a few patterns: duplicates and tied similarities everywhere."""
    patterns = (rng.random((max(1, n // 3), d)) < rng.uniform(0.1, 0.8)).astype(np.float32)
    return sp.csr_matrix(patterns[rng.integers(0, len(patterns), n)])


def test_hand_made_example() -> None:
    index = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1]], np.float32))
    sims, rows = cosine_top_k(sp.csr_matrix(np.array([[1, 1, 0]], np.float32)), index, 3)
    assert rows.tolist() == [[1, 2, 0]]  # the two copies first, the earlier one first
    np.testing.assert_allclose(sims, [[1.0, 1.0, 1 / np.sqrt(2)]], rtol=1e-6)


@pytest.mark.parametrize("trial", range(12))
def test_binary_rows_equal_the_reference_exactly(trial: int) -> None:
    rng = np.random.default_rng(trial)
    d = int(rng.integers(1, 16))
    index = _binary_with_duplicates(rng, int(rng.integers(1, 80)), d)
    query = _binary_with_duplicates(rng, int(rng.integers(1, 40)), d)
    k = int(rng.integers(1, 20))
    share = [0.0, 1.0, float(rng.uniform())][trial % 3]  # all dense, all sparse, a mix
    fast = cosine_top_k(query, index, k, chunk=int(rng.integers(1, 9)), dense_share=share)
    naive = cosine_top_k_naive(query, index, k)
    np.testing.assert_array_equal(fast[1], naive[1])
    np.testing.assert_array_equal(fast[0], naive[0])


def test_real_valued_rows_match_the_reference() -> None:
    rng = np.random.default_rng(0)
    index = sp.csr_matrix(rng.normal(size=(60, 12)).astype(np.float32))
    query = sp.csr_matrix(rng.normal(size=(25, 12)).astype(np.float32))
    fast, naive = cosine_top_k(query, index, 60, chunk=4), cosine_top_k_naive(query, index, 60)
    np.testing.assert_allclose(fast[0], naive[0], atol=1e-6)
    np.testing.assert_array_equal(fast[1], naive[1])
    assert (fast[0] < 0).any()  # every row: negative similarities are ordered too


def test_long_ties_past_the_window_and_empty_rows() -> None:
    d = 50
    index = sp.lil_matrix((d, d), dtype=np.float32)
    for j in range(1, d):  # 49 distinct rows, each at cosine 1/sqrt(2) from the query
        index[j, 0] = index[j, j] = 1.0
    index = index.tocsr()  # row 0 is empty
    query = sp.csr_matrix(np.vstack([np.eye(1, d), np.zeros((1, d))]).astype(np.float32))
    sims, rows = cosine_top_k(query, index, 5)
    assert rows[0].tolist() == [1, 2, 3, 4, 5]
    assert rows[1].tolist() == [0, 1, 2, 3, 4]  # an empty query ties at 0 with every row
    assert (sims[1] == 0).all()
    np.testing.assert_array_equal(rows, cosine_top_k_naive(query, index, 5)[1])


def test_k_is_capped_at_the_index_rows() -> None:
    index = sp.csr_matrix(np.eye(3, dtype=np.float32))
    sims, rows = cosine_top_k(index, index, 10)
    assert rows.shape == (3, 3) and rows[:, 0].tolist() == [0, 1, 2]


def test_similarities_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    index = sp.csr_matrix((rng.random((300, 64)) < 0.2).astype(np.float32))
    query = sp.csr_matrix((rng.random((50, 64)) < 0.2).astype(np.float32))
    dist, _ = (
        NearestNeighbors(n_neighbors=10, metric="cosine", algorithm="brute")
        .fit(index)
        .kneighbors(query)
    )
    np.testing.assert_allclose(cosine_top_k(query, index, 10)[0], 1.0 - dist, atol=1e-6)


def test_distinct_rows_number_by_first_appearance() -> None:
    x = sp.csr_matrix(np.array([[0, 1], [1, 0], [0, 1], [0, 0], [1, 0]], np.float32))
    first, ids = distinct_rows(x)
    assert first.tolist() == [0, 1, 3] and ids.tolist() == [0, 1, 0, 2, 1]
