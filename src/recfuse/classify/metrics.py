"""Metrics for hierarchical genre prediction.

Level 1: accuracy and macro F1 over {non-fiction, fiction} (fiction is the minority on
booklyn-books, so macro F1 is the informative one). Level 2: micro and macro F1 over genres
(macro over the genres with at least one positive in the scored rows), per-genre F1, and
hierarchical F1: each book's predicted and true label sets are augmented with their ancestor
(the Level 1 label), then micro precision / recall over the augmented sets (Kiritchenko et al.).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def level1_scores(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 of binary Level 1 predictions ([N] 0/1 each)."""
    true, pred = np.asarray(true).astype(int), np.asarray(pred).astype(int)
    f1s = [
        float(_f1(((pred == c) & (true == c)).sum(), ((pred == c) & (true != c)).sum(),
                  ((pred != c) & (true == c)).sum()))
        for c in (0, 1)
    ]  # fmt: skip
    return {"l1_acc": float((true == pred).mean()), "l1_f1": float(np.mean(f1s))}


def per_genre_f1(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """[C] F1 per genre from [N, C] 0/1 arrays (0 where a genre has no true and no predicted)."""
    t, p = np.asarray(true).astype(bool), np.asarray(pred).astype(bool)
    return _f1((t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0))


def level2_scores(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Micro F1 and macro F1 (over genres present in ``true``) of [N, C] multi-label predictions."""
    t, p = np.asarray(true).astype(bool), np.asarray(pred).astype(bool)
    micro = float(_f1((t & p).sum(), (~t & p).sum(), (t & ~p).sum()))
    present = t.any(0)
    macro = float(per_genre_f1(t, p)[present].mean()) if present.any() else 0.0
    return {"l2_micro_f1": micro, "l2_macro_f1": macro}


def hierarchical_f1(
    true_l1: np.ndarray, true_l2: np.ndarray, pred_l1: np.ndarray, pred_l2: np.ndarray
) -> float:
    """Micro hierarchical F1 over label sets augmented with the Level 1 ancestor."""
    t = np.concatenate([np.stack([true_l1 == 0, true_l1 == 1], 1), true_l2.astype(bool)], 1)
    p = np.concatenate([np.stack([pred_l1 == 0, pred_l1 == 1], 1), pred_l2.astype(bool)], 1)
    return float(_f1((t & p).sum(), (~t & p).sum(), (t & ~p).sum()))


def example_f1(
    true_l1: np.ndarray, true_l2: np.ndarray, pred_l1: np.ndarray, pred_l2: np.ndarray
) -> np.ndarray:
    """[N] per-book hierarchical F1 (augmented sets), the unit of the paired significance tests."""
    t = np.concatenate([np.stack([true_l1 == 0, true_l1 == 1], 1), true_l2.astype(bool)], 1)
    p = np.concatenate([np.stack([pred_l1 == 0, pred_l1 == 1], 1), pred_l2.astype(bool)], 1)
    return _f1((t & p).sum(1), (~t & p).sum(1), (t & ~p).sum(1))


def all_scores(
    true_l1: np.ndarray, true_l2: np.ndarray, pred_l1: np.ndarray, pred_l2: np.ndarray
) -> dict[str, float]:
    """Level 1, Level 2 and hierarchical scores in one dict."""
    return {
        **level1_scores(true_l1, pred_l1),
        **level2_scores(true_l2, pred_l2),
        "h_f1": hierarchical_f1(true_l1, true_l2, pred_l1, pred_l2),
    }


def per_genre_table(true: np.ndarray, pred: np.ndarray, genres: Sequence[str]) -> dict[str, float]:
    """Genre name -> F1 (genres with a positive in ``true`` only)."""
    f1 = per_genre_f1(true, pred)
    present = np.asarray(np.asarray(true).astype(bool).any(axis=0)).reshape(-1).tolist()
    return {g: float(f) for g, f, ok in zip(genres, f1, present, strict=True) if ok}
