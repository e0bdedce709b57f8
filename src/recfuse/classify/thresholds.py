"""Decision thresholds tuned on VALIDATION predictions only.

The functions here take validation probabilities and labels and nothing else, so test rows cannot
influence a threshold; the classifiers call them with their validation part only.
"""

from __future__ import annotations

import numpy as np

GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def tune_genre_thresholds(
    probs: np.ndarray, labels: np.ndarray, grid: np.ndarray = GRID
) -> np.ndarray:
    """[C] per-genre threshold maximizing validation F1 ([Nv, C] probabilities and 0/1 labels).

    A genre without a positive in validation keeps 0.5: there is nothing to tune it on. Ties go to
    the threshold closest to 0.5.
    """
    y = np.asarray(labels).astype(bool)[None]  # [1, Nv, C]
    decide = np.asarray(probs)[None] >= grid[:, None, None]  # [G, Nv, C]
    tp = (decide & y).sum(1)
    fp = (decide & ~y).sum(1)
    fn = (~decide & y).sum(1)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)  # [G, C]
    closeness = -np.abs(grid - 0.5)[:, None] * 1e-6  # tie-break toward 0.5
    best = grid[np.argmax(f1 + closeness, axis=0)]
    return np.where(y[0].any(0), best, 0.5)


def tune_binary_threshold(probs: np.ndarray, labels: np.ndarray, grid: np.ndarray = GRID) -> float:
    """Level 1 threshold maximizing validation macro F1 over the two classes."""
    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        return 0.5
    scores = []
    for t in grid:
        p = np.asarray(probs) >= t
        f_pos = 2 * (p & y).sum() / max(2 * (p & y).sum() + (p & ~y).sum() + (~p & y).sum(), 1)
        f_neg = 2 * (~p & ~y).sum() / max(2 * (~p & ~y).sum() + (~p & y).sum() + (p & ~y).sum(), 1)
        scores.append((f_pos + f_neg) / 2 - abs(t - 0.5) * 1e-6)
    return float(grid[int(np.argmax(scores))])


def decide_genres(probs: np.ndarray, thresholds: np.ndarray, single_label: bool) -> np.ndarray:
    """[N, C] 0/1 decisions: genre g where ``probs[:, g] >= thresholds[g]``.

    ``single_label`` (booklyn-books: exactly one category per book) predicts the top genre
    instead: per-genre thresholds tuned on ~2 validation positives per genre are noise there, and
    a multi-label decision on a single-label task only adds false positives.
    """
    if single_label:
        pred = np.zeros(probs.shape, dtype=np.uint8)
        pred[np.arange(len(probs)), np.argmax(probs, axis=1)] = 1
        return pred
    return (probs >= thresholds[None]).astype(np.uint8)
