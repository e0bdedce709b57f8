"""Ranking metrics from pessimistic ranks, and beyond-accuracy metrics from top-K lists.

A rank is 0-based: the number of unmasked items other than the target whose score is greater than
*or equal to* the target's. Ties therefore count against the model, so a model that scores every
item the same gets the worst rank, not a lucky one from item-id order.
"""

from __future__ import annotations

import numpy as np


def ranking_metrics(
    ranks: np.ndarray, owner: np.ndarray, n_targets: np.ndarray, ks: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Per-user metrics from per-target ranks.

    Args:
        ranks: 0-based pessimistic rank of each (user, target) pair, shape [P].
        owner: row index (0..U-1) of the user each pair belongs to, shape [P].
        n_targets: number of targets per user, shape [U].
        ks: cut-offs.
    Returns:
        name -> array [U] for Recall/NDCG/Hit/Precision at each K and MRR.
    """
    n_users = len(n_targets)
    out: dict[str, np.ndarray] = {}
    gains = 1.0 / np.log2(ranks + 2.0)
    first = np.full(n_users, np.inf)
    np.minimum.at(first, owner, ranks)
    out["MRR"] = 1.0 / (first + 1.0)
    for k in ks:
        hit = ranks < k
        hits = np.bincount(owner, weights=hit, minlength=n_users)
        dcg = np.bincount(owner, weights=gains * hit, minlength=n_users)
        ideal_n = np.minimum(n_targets, k)
        idcg = np.array([_IDCG[n] if n < len(_IDCG) else _idcg(n) for n in ideal_n])
        out[f"Recall@{k}"] = hits / n_targets
        out[f"NDCG@{k}"] = dcg / idcg
        out[f"Hit@{k}"] = (hits > 0).astype(float)
        out[f"Precision@{k}"] = hits / k
    return out


def _idcg(n: int) -> float:
    return float((1.0 / np.log2(np.arange(n) + 2.0)).sum())


_IDCG = np.array([_idcg(n) for n in range(101)])


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of how often each item was recommended (0 = even, 1 = one item)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    index = np.arange(1, n + 1)
    return float(((2 * index - n - 1) * x).sum() / (n * x.sum()))


def beyond_accuracy(
    top_items: np.ndarray, item_popularity: np.ndarray, tail_items: np.ndarray
) -> dict[str, float]:
    """Coverage, average popularity, Gini and tail share of top-K lists.

    Args:
        top_items: recommended item indices, shape [U, K].
        item_popularity: training interaction count per item, shape [n_items].
        tail_items: boolean mask of long-tail items, shape [n_items].
    """
    k = top_items.shape[1]
    n_items = len(item_popularity)
    flat = top_items.ravel()
    counts = np.bincount(flat, minlength=n_items)
    return {
        f"Coverage@{k}": float((counts > 0).mean()),
        f"AvgPop@{k}": float(item_popularity[flat].mean()) if flat.size else 0.0,
        f"Gini@{k}": gini(counts),
        f"TailShare@{k}": float(tail_items[flat].mean()) if flat.size else 0.0,
    }
