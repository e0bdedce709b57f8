"""The discriminator: a teacher's compatibility score for every training edge, real and
synthetic; the lowest-scoring fraction is dropped or down-weighted (the fraction is chosen by the study on
validation I2I recall). Also the two drop controls (random drops of as many edges; LLMRec-style
loss-based pruning with a matrix-factorisation model) and the labelled precision check.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recfuse.augment.gate import RefinementGate
from recfuse.augment.teachers import Teacher
from recfuse.split import Split


def lowest(scores: np.ndarray, fraction: float) -> np.ndarray:
    """bool [n]: the ``fraction`` lowest scores (stable order breaks ties)."""
    drop = np.zeros(len(scores), dtype=bool)
    drop[np.argsort(scores, kind="stable")[: int(round(fraction * len(scores)))]] = True
    return drop


def discriminate(
    edges: pd.DataFrame, scores: np.ndarray, fraction: float, gate: RefinementGate, source: str,
    factor: float = 0.0,
) -> pd.DataFrame:  # fmt: skip
    """Drop the ``fraction`` of ``edges`` with the lowest teacher ``scores`` (through the gate);
    with ``factor`` > 0 keep them at ``factor`` times their weight instead."""
    return gate.drop_edges(edges, lowest(scores, fraction), source, factor)


def random_drop(
    edges: pd.DataFrame, n: int, gate: RefinementGate, rng: np.random.Generator
) -> pd.DataFrame:
    """The control: drop ``n`` uniformly random edges."""
    drop = np.zeros(len(edges), dtype=bool)
    drop[rng.choice(len(edges), n, replace=False)] = True
    return gate.drop_edges(edges, drop, "random-drop")


def mf_edge_scores(split: Split, edges: pd.DataFrame, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Predicted score u·v of each edge under a truncated SVD of the (weighted) training matrix:
    a low score is a high pointwise loss, the edges LLMRec-style pruning removes first."""
    from scipy.sparse.linalg import svds

    from recfuse.models.i2i import weighted_matrix

    matrix = weighted_matrix(edges, split.n_users, split.n_items).astype(np.float64)
    k = min(dim, min(matrix.shape) - 1)
    v0 = np.random.default_rng(seed).standard_normal(min(matrix.shape))
    u, s, vt = svds(sp.csr_matrix(matrix), k=k, v0=v0)
    users, items = edges["user"].to_numpy(), edges["item"].to_numpy()
    return np.einsum("nk,nk->n", u[users] * s, vt.T[items])


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a random positive > a random negative), ties count half."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def labelled_check(
    teacher: Teacher, split: Split, threshold: float, rng: np.random.Generator, n: int = 2000
) -> dict[str, float]:
    """The discriminator on a labelled set: held-out real edges (validation pairs) against as
    many random non-edges of the same users. Returns AUC and, for "keep if score >= threshold",
    precision (kept pairs that are real) and recall (real pairs kept). Profiles use training
    data only; the validation pairs are only the labels."""
    valid = split.valid.sample(min(n, len(split.valid)), random_state=int(rng.integers(2**31)))
    users = valid["user"].to_numpy()
    seen = split.seen_matrix("test").tocsr()
    neg_items = rng.integers(0, split.n_items, len(users))
    for r in range(len(users)):  # redraw the few that hit a real interaction
        while seen[users[r], neg_items[r]]:
            neg_items[r] = rng.integers(0, split.n_items)
    pos = teacher.score(users, valid["item"].to_numpy())
    neg = teacher.score(users, neg_items)
    kept_pos, kept_neg = int((pos >= threshold).sum()), int((neg >= threshold).sum())
    return {
        "auc": auc(pos, neg),
        "precision": kept_pos / max(1, kept_pos + kept_neg),
        "recall": kept_pos / len(pos),
        "pairs": float(2 * len(pos)),
    }
