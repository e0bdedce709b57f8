"""The one significance module: paired tests on arrays, a per-user DataFrame wrapper, Holm.

Every comparison in recfuse — `eval compare`, every study's verdicts — goes through here, so the
rule for degenerate inputs is written once: with fewer than two pairs, or with every paired
difference equal to zero, there is no evidence of a difference and the p-value is 1.0. A constant
non-zero difference (every pair moves the same way by the same amount) has zero variance; the
t-test is undefined there, so it is reported as NaN t and p = 0.0 only when at least two pairs
agree — with one pair nothing can be said.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from recfuse.errors import RecfuseError


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of ``a`` against ``b`` (``diff`` is mean(a − b))."""

    metric: str
    n_users: int
    mean_a: float
    mean_b: float
    diff: float
    t_pvalue: float
    wilcoxon_pvalue: float

    def line(self) -> str:
        return (
            f"{self.metric}: {self.mean_a:.4f} vs {self.mean_b:.4f} (diff {self.diff:+.4f}, "
            f"n={self.n_users}, paired t p={self.t_pvalue:.3g}, Wilcoxon p={self.wilcoxon_pvalue:.3g})"
        )


def paired_arrays(a: np.ndarray, b: np.ndarray, metric: str = "") -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of ``a`` against ``b``.

    Args:
        a, b: float arrays [n] of paired observations (same user, seed or book at each index).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise RecfuseError(
            f"paired test needs two 1-d arrays of one length, got {x.shape}, {y.shape}"
        )
    diff = x - y
    n = len(diff)
    if n < 2 or np.allclose(diff, 0.0):
        t_p = w_p = 1.0
    elif np.allclose(diff, diff[0]):
        t_p = w_p = 0.0
    else:
        t_p = float(stats.ttest_rel(x, y).pvalue)
        w_p = float(stats.wilcoxon(x, y, zero_method="wilcox").pvalue)
    if n == 0:
        return PairedTest(metric, 0, float("nan"), float("nan"), float("nan"), t_p, w_p)
    return PairedTest(metric, n, float(x.mean()), float(y.mean()), float(diff.mean()), t_p, w_p)


def paired_test(a: pd.DataFrame, b: pd.DataFrame, metric: str = "NDCG@10") -> PairedTest:
    """`paired_arrays` over the users present in both per-user result frames.

    Args:
        a, b: per-user result frames with a ``user`` column and the metric column.
    """
    for name, frame in (("a", a), ("b", b)):
        if metric not in frame.columns:
            raise RecfuseError(f"per-user results {name} have no column {metric!r}")
    joined = a[["user", metric]].merge(b[["user", metric]], on="user", suffixes=("_a", "_b"))
    if joined.empty:
        raise RecfuseError("the two runs share no evaluated users")
    return paired_arrays(joined[f"{metric}_a"].to_numpy(), joined[f"{metric}_b"].to_numpy(), metric)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (monotone, capped at 1).

    Use it when several arms are compared with one reference: the family-wise error rate of
    the whole set stays at the nominal level.
    """
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return [float(v) for v in adjusted]


def sign_flip_test(diff: np.ndarray, n_permutations: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired permutation p-value: flip the sign of each paired difference at random.

    Args:
        diff: paired differences [n].
    """
    diff = np.asarray(diff, dtype=float)
    if len(diff) == 0 or np.allclose(diff, 0.0):
        return 1.0
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_permutations, len(diff)))
    null = np.abs((signs * diff[None]).mean(1))
    return (1 + int((null >= observed - 1e-12).sum())) / (n_permutations + 1)
