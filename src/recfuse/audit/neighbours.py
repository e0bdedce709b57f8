"""Exact cosine k-nearest neighbours between the rows of two sparse matrices.

`cosine_top_k` is the fast path, `cosine_top_k_naive` the reference it must equal (tests pin
them together). Both score a pair as ``dot(q, x) / (|q| |x|)`` in float32 — on binary rows
(fingerprints) the dot is an exact integer in any summation order, so the two paths give
bit-identical similarities — and both order neighbours by similarity descending, then by index
row ascending, so ties are broken the same way every time. A row with no non-zero entry has
similarity 0 to everything.

Why the fast path is faster than scikit-learn's brute force on sparse rows (measured in
``benchmarks/knn_speed.py``):

- duplicate rows are scored once (85,563 ChEMBL rows hold 56,562 distinct fingerprints);
- the columns that many rows share go through one dense matrix product and only the rare ones
  through a sparse product: a few Morgan bits are on in most molecules, and a sparse product
  spends most of its time on exactly those.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

#: a column on in more than this share of the index's distinct rows is multiplied densely
DENSE_SHARE = 0.05  # 0.03-0.1 measured within 5 % of each other on ChEMBL


def _inverse_norms(x: sp.csr_matrix) -> np.ndarray:
    """1 / |row| as float32 [n_rows]; 0 for an empty row (so its similarities are 0)."""
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1), dtype=np.float32).ravel())
    with np.errstate(divide="ignore"):
        return np.where(norms > 0, np.float32(1.0) / norms, np.float32(0.0)).astype(np.float32)


def cosine_top_k_naive(
    query: sp.csr_matrix, index: sp.csr_matrix, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The reference: every pair densely, one query row at a time.

    Returns (similarity [n_query, k] float32, index row [n_query, k] int64), ``k`` capped at the
    number of index rows.
    """
    q, x = query.toarray().astype(np.float32), index.toarray().astype(np.float32)
    k = min(k, x.shape[0])
    q_inv, x_inv = _inverse_norms(sp.csr_matrix(q)), _inverse_norms(sp.csr_matrix(x))
    sims = np.zeros((q.shape[0], k), dtype=np.float32)
    rows = np.zeros((q.shape[0], k), dtype=np.int64)
    for r in range(q.shape[0]):
        s = (x @ q[r]) * q_inv[r] * x_inv  # float32, multiplied in this order on both paths
        order = np.lexsort((np.arange(x.shape[0]), -s))[:k]
        sims[r], rows[r] = s[order], order
    return sims, rows


def distinct_rows(x: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Rows with identical entries, numbered in order of first appearance.

    Returns (first row of each distinct row [n_distinct], distinct id of every row [n_rows]).
    """
    x = x.tocsr()
    x.sort_indices()
    keys = [
        x.indices[a:b].tobytes() + x.data[a:b].tobytes()
        for a, b in zip(x.indptr[:-1], x.indptr[1:], strict=True)
    ]
    seen: dict[bytes, int] = {}
    ids = np.fromiter((seen.setdefault(key, len(seen)) for key in keys), np.int64, len(keys))
    first = np.full(len(seen), len(keys), dtype=np.int64)
    np.minimum.at(first, ids, np.arange(len(keys)))
    return first, ids


def _top_k_by_id(sims: np.ndarray, k: int, margin: int = 16) -> np.ndarray:
    """Per row of sims [c, n], the k columns with the largest values, ties to the lower column,
    ordered (value descending, column ascending). Returns [c, k] int64.

    A top-(k + margin) by value holds every column tied with the k-th value unless the tie runs
    past the window's end; those rare rows (an empty query row ties everywhere) are redone whole.
    """
    width = min(sims.shape[1], k + margin)
    values_t, cols_t = torch.topk(torch.from_numpy(sims), width, dim=1)
    values, cols = values_t.numpy(), cols_t.numpy()
    out = np.take_along_axis(cols, np.lexsort((cols, -values), axis=1), axis=1)[:, :k]
    if width < sims.shape[1]:
        for r in np.flatnonzero(values[:, width - 1] == values[:, k - 1]):
            cand = np.flatnonzero(sims[r] >= values[r, k - 1])
            out[r] = cand[np.lexsort((cand, -sims[r, cand]))][:k]
    return out


def cosine_top_k(
    query: sp.csr_matrix,
    index: sp.csr_matrix,
    k: int,
    chunk: int = 256,
    dense_share: float = DENSE_SHARE,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k cosine neighbours in ``index`` for every row of ``query``.

    Equal to `cosine_top_k_naive` (same similarities, same tie order). Returns (similarity
    [n_query, k] float32, index row [n_query, k] int64), ``k`` capped at the number of index rows.
    """
    query, index = query.tocsr().astype(np.float32), index.tocsr().astype(np.float32)
    k = min(k, index.shape[0])
    if k == 0 or query.shape[0] == 0:
        return np.zeros((query.shape[0], k), np.float32), np.zeros((query.shape[0], k), np.int64)
    q_first, q_id = distinct_rows(query)
    x_first, x_id = distinct_rows(index)
    uq, ux = query[q_first], index[x_first]
    q_inv, x_inv = torch.from_numpy(_inverse_norms(uq)), torch.from_numpy(_inverse_norms(ux))
    # rows of each distinct index row, ascending, padded with a sentinel past the last row
    order = np.lexsort((np.arange(len(x_id)), x_id))
    start = np.searchsorted(x_id[order], np.arange(len(x_first)))
    rank = np.arange(len(order)) - start[x_id[order]]
    copies = np.full((len(x_first), k), index.shape[0], dtype=np.int64)
    keep = rank < k
    copies[x_id[order][keep], rank[keep]] = order[keep]

    shared = np.asarray((ux != 0).mean(axis=0)).ravel() > dense_share
    dense_q = torch.from_numpy(uq[:, shared].toarray())
    dense_x_t = torch.from_numpy(ux[:, shared].toarray().T.copy())
    rare_q, rare_x_t = uq[:, ~shared].tocsr(), ux[:, ~shared].T.tocsr()
    kd = min(k, len(x_first))
    out_s = np.zeros((len(q_first), k), dtype=np.float32)  # per distinct query row
    out_r = np.zeros((len(q_first), k), dtype=np.int64)
    for a in range(0, len(q_first), chunk):
        b = min(a + chunk, len(q_first))
        dots = torch.from_numpy((rare_q[a:b] @ rare_x_t).toarray())
        torch.addmm(dots, dense_q[a:b], dense_x_t, out=dots)
        sims_t = dots.mul_(q_inv[a:b, None]).mul_(x_inv[None, :])
        s = sims_t.numpy()
        best = _top_k_by_id(s, kd)  # distinct rows by (similarity, first row): see below
        # A true top-k row lies in the copies of the top-k distinct rows ordered by
        # (similarity desc, first row asc): otherwise k rows of those distinct rows precede it.
        rows = copies[best].reshape(b - a, -1)
        sims = np.repeat(np.take_along_axis(s, best, axis=1), k, axis=1)
        sims[rows == index.shape[0]] = -np.inf
        pick = np.lexsort((rows, -sims), axis=1)[:, :k]
        out_r[a:b] = np.take_along_axis(rows, pick, axis=1)
        out_s[a:b] = np.take_along_axis(sims, pick, axis=1)
    return out_s[q_id], out_r[q_id]  # every query row gets its distinct row's answer
