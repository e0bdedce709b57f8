"""Paired significance tests for comparing two genre classifiers on the same test books."""

from __future__ import annotations

import numpy as np
from scipy import stats


def paired_t(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired t-test over seeds (``a``, ``b``: one score per seed, same seeds)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = a - b
    if len(diff) < 2 or np.allclose(diff, diff[0]):
        p = 1.0 if np.allclose(diff, 0) else 0.0
        return {"mean_diff": float(diff.mean()), "t": float("nan"), "p": p, "n": len(diff)}
    t, p = stats.ttest_rel(a, b)
    return {"mean_diff": float(diff.mean()), "t": float(t), "p": float(p), "n": len(diff)}


def sign_flip_test(
    diff: np.ndarray, n_permutations: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Two-sided paired permutation test: randomly flip the sign of each paired difference.

    ``diff`` holds per-book score differences (pooled over seeds: the same book can appear under
    several seeds, so treat the p-value as approximate when pooling).
    """
    diff = np.asarray(diff, dtype=float)
    if len(diff) == 0:
        return {"mean_diff": 0.0, "p": 1.0, "n": 0}
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_permutations, len(diff)))
    null = np.abs((signs * diff[None]).mean(1))
    p = (1 + int((null >= observed - 1e-12).sum())) / (n_permutations + 1)
    return {"mean_diff": float(diff.mean()), "p": float(p), "n": len(diff)}
