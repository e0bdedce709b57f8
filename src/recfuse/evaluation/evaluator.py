"""`Evaluator`: full ranking over all items, seen items masked, ties broken pessimistically.

Users are processed in chunks so memory stays bounded; every user's numbers depend only on that
user's row of scores, so results do not depend on the chunk size. Sampled-negative evaluation runs
only when asked for, and its results say so in their ``protocol`` label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from recfuse.evaluation.metrics import beyond_accuracy, ranking_metrics
from recfuse.models.base import Recommender
from recfuse.split import Split, Stage

HISTORY_BUCKETS = (0, 5, 10, 20, 50, np.inf)


@dataclass
class EvalResult:
    """Metrics of one model at one stage.

    Attributes:
        protocol: ``"full"`` or ``"sampled-N"``; every table that shows these numbers shows it.
        metrics: mean over evaluated users of each metric, plus beyond-accuracy metrics.
        per_user: one row per evaluated user (``user``, ``n_history``, ``target_pop`` and metrics),
            for slices and paired significance tests.
        slices: mean NDCG/Recall per history-length bucket and per target-popularity group.
    """

    stage: str
    protocol: str
    metrics: dict[str, float]
    per_user: pd.DataFrame
    slices: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: float = 0.0


class Evaluator:
    """Evaluate any `Recommender` on a `Split`.

    Args:
        split: the split; its visible interactions are masked at each stage.
        ks: cut-offs for ranking metrics (the largest also sets the top-K lists).
        batch_users: users scored per chunk (memory ~ batch_users × n_items × 4 bytes × 3).
        sampled_negatives: if set, rank each target among this many sampled unseen items instead
            of all items; results are labelled ``sampled-N``.
        tail_fraction: items outside the most popular ``1 - tail_fraction`` are the long tail.
        users: restrict evaluation to these users (e.g. a documented subsample).
    """

    def __init__(
        self,
        split: Split,
        ks: tuple[int, ...] = (5, 10, 20),
        batch_users: int = 1024,
        sampled_negatives: int | None = None,
        tail_fraction: float = 0.8,
        seed: int = 0,
        users: np.ndarray | None = None,
        progress: bool = False,
    ) -> None:
        self.split = split
        self.ks = tuple(sorted(ks))
        self.batch_users = batch_users
        self.sampled_negatives = sampled_negatives
        self.seed = seed
        self.users = None if users is None else np.unique(users)
        self.progress = progress
        self.item_popularity = np.bincount(split.train["item"].to_numpy(), minlength=split.n_items)
        order = np.argsort(-self.item_popularity, kind="stable")
        self.tail_items = np.ones(split.n_items, dtype=bool)
        self.tail_items[order[: int(round((1 - tail_fraction) * split.n_items))]] = False
        self._histories: dict[str, list[np.ndarray]] = {}

    @property
    def protocol(self) -> str:
        return "full" if self.sampled_negatives is None else f"sampled-{self.sampled_negatives}"

    def histories(self, stage: Stage) -> list[np.ndarray]:
        if stage not in self._histories:
            self._histories[stage] = self.split.histories(stage)
        return self._histories[stage]

    def evaluate(self, model: Recommender, stage: Stage = "test") -> EvalResult:
        """Score every target user of ``stage`` and return metrics, per-user rows and slices."""
        import time

        start = time.perf_counter()
        targets = self.split.targets(stage)
        if self.users is not None:
            targets = targets[targets["user"].isin(self.users)]
        target_users = np.unique(targets["user"].to_numpy())
        # targets are sorted by user, so each user's targets are one contiguous run
        targets = targets.sort_values("user", kind="stable")
        t_items = targets["item"].to_numpy().copy()
        bounds = np.searchsorted(
            targets["user"].to_numpy(), np.append(target_users, np.iinfo(np.int64).max)
        )
        histories = self.histories(stage)
        rng = np.random.default_rng(self.seed)

        ranks_all: list[np.ndarray] = []
        owner_all: list[np.ndarray] = []
        tops: list[np.ndarray] = []
        kmax = self.ks[-1]
        chunks = range(0, len(target_users), self.batch_users)
        for lo in tqdm(chunks, desc=f"evaluate {stage}", disable=not self.progress, leave=False):
            users = target_users[lo : lo + self.batch_users]
            hist = [histories[u] for u in users]
            scores = np.array(model.score(users, hist), dtype=np.float32, copy=None)
            if not scores.flags.writeable:
                scores = scores.copy()
            if np.isnan(scores).any():  # a NaN score is the worst score, never a lucky one
                np.nan_to_num(scores, copy=False, nan=-np.inf)
            rows = np.repeat(np.arange(len(users)), [len(h) for h in hist])
            cols = np.concatenate(hist) if rows.size else np.zeros(0, dtype=np.int64)
            counts = np.diff(bounds[lo : lo + len(users) + 1])
            pair_rows = np.repeat(np.arange(len(users)), counts)
            pair_items = t_items[bounds[lo] : bounds[lo + len(users)]]
            target_scores = scores[pair_rows, pair_items].copy()
            scores[rows, cols] = -np.inf
            # Seen items are masked, but never a target itself: a (user, item) pair that is
            # both history and target (a repeat) would otherwise score 0 whatever the model did.
            scores[pair_rows, pair_items] = target_scores
            if self.sampled_negatives is not None:
                ranks = self._sampled_ranks(scores, pair_rows, pair_items, target_scores, rng)
            else:
                # pessimistic: every other item scoring >= the target ranks above it
                # (numpy's count_nonzero is several times faster than a torch bool sum here)
                by_row = scores if np.all(counts == 1) else scores[pair_rows]
                ranks = np.count_nonzero(by_row >= target_scores[:, None], axis=1) - 1
            ranks_all.append(ranks)
            owner_all.append(pair_rows + lo)
            best = torch.topk(torch.from_numpy(scores), min(kmax, scores.shape[1]), dim=1)
            tops.append(best.indices.numpy())

        ranks = np.concatenate(ranks_all).astype(np.float64)
        owner = np.concatenate(owner_all)
        n_targets = np.diff(bounds)
        per_user_metrics = ranking_metrics(ranks, owner, n_targets, self.ks)
        per_user = pd.DataFrame({"user": target_users})
        per_user["n_history"] = [len(histories[u]) for u in target_users]
        per_user["target_pop"] = (
            np.bincount(owner, weights=self.item_popularity[t_items], minlength=len(target_users))
            / n_targets
        )
        per_user["target_tail"] = (
            np.bincount(owner, weights=self.tail_items[t_items], minlength=len(target_users))
            / n_targets
        )
        for name, values in per_user_metrics.items():
            per_user[name] = values
        metrics = {name: float(np.mean(v)) for name, v in per_user_metrics.items()}
        top = np.concatenate(tops) if tops else np.zeros((0, kmax), dtype=np.int64)
        for k in self.ks:
            metrics.update(beyond_accuracy(top[:, :k], self.item_popularity, self.tail_items))
        metrics["users"] = float(len(target_users))
        result = EvalResult(
            stage, self.protocol, metrics, per_user, seconds=time.perf_counter() - start
        )
        result.slices = slice_table(per_user)
        return result

    def _sampled_ranks(
        self,
        scores: np.ndarray,
        pair_rows: np.ndarray,
        pair_items: np.ndarray,
        target_scores: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Rank each target among ``sampled_negatives`` uniformly drawn unseen non-target items."""
        n = self.sampled_negatives or 0
        neg = rng.integers(0, scores.shape[1], size=(len(pair_rows), n))
        neg_scores = scores[pair_rows[:, None], neg]
        # a sampled seen item (-inf) or the target itself does not count as a negative; ties do
        valid = np.isfinite(neg_scores) & (neg != pair_items[:, None])
        return np.count_nonzero((neg_scores >= target_scores[:, None]) & valid, axis=1)


def slice_table(per_user: pd.DataFrame) -> pd.DataFrame:
    """Mean NDCG@10 / Recall@10 (or the first K present) by history length and target tail/head."""
    metric_cols = [c for c in per_user.columns if c.startswith(("NDCG@", "Recall@"))]
    wanted = [c for c in metric_cols if c.endswith("@10")] or metric_cols[:2]
    labels = [
        f"{int(a) + 1}-{'' if np.isinf(b) else int(b)}"
        for a, b in zip(HISTORY_BUCKETS[:-1], HISTORY_BUCKETS[1:], strict=True)
    ]
    hist_bucket = pd.cut(
        per_user["n_history"], bins=list(HISTORY_BUCKETS), labels=labels, include_lowest=True
    )
    parts = []
    by_hist = per_user.groupby(hist_bucket, observed=True)[wanted].mean()
    by_hist.insert(0, "users", per_user.groupby(hist_bucket, observed=True).size())
    by_hist.index = [f"history {i}" for i in by_hist.index]
    parts.append(by_hist)
    pop_group = np.where(per_user["target_tail"] >= 0.5, "tail target", "head target")
    by_pop = per_user.groupby(pop_group)[wanted].mean()
    by_pop.insert(0, "users", per_user.groupby(pop_group).size())
    parts.append(by_pop)
    return pd.concat(parts)
