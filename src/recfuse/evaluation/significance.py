"""Paired significance tests between two runs on the same users."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from recfuse.errors import RecfuseError


@dataclass(frozen=True)
class PairedTest:
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


def paired_test(a: pd.DataFrame, b: pd.DataFrame, metric: str = "NDCG@10") -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of ``metric`` over users present in both.

    Args:
        a, b: per-user result frames with a ``user`` column and the metric column.
    """
    for name, frame in (("a", a), ("b", b)):
        if metric not in frame.columns:
            raise RecfuseError(f"per-user results {name} have no column {metric!r}")
    joined = a[["user", metric]].merge(b[["user", metric]], on="user", suffixes=("_a", "_b"))
    if joined.empty:
        raise RecfuseError("the two runs share no evaluated users")
    x, y = joined[f"{metric}_a"].to_numpy(), joined[f"{metric}_b"].to_numpy()
    diff = x - y
    if np.allclose(diff, 0):
        t_p = w_p = 1.0
    else:
        t_p = float(stats.ttest_rel(x, y).pvalue)
        w_p = float(stats.wilcoxon(x, y, zero_method="wilcox").pvalue)
    return PairedTest(
        metric, len(joined), float(x.mean()), float(y.mean()), float(diff.mean()), t_p, w_p
    )
