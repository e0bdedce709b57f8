"""A feature-based re-ranker over a saved run, and SHAP over its features.

The ranker re-orders the run model's top-N candidates with six transparent features per
(user, candidate item):

* ``base_score`` — the run model's score of the item for this history;
* ``base_rank`` — the item's rank in the run model's list (1 = its first);
* ``popularity`` — how many training users interacted with the item;
* ``similarity`` — the MiniLM cosine of the item's title to the most similar history title
  (`recfuse.features.embed`, the one text-to-vector path);
* ``cooccurrence`` — training users who interacted with both the item and a history item,
  averaged over the history items;
* ``item_age_days`` — days from the item's first training interaction to the user's last
  history interaction (-1 for an item no training user has).

No test information: item statistics (popularity, co-occurrence, first appearance) come from the
training interactions alone. The ranker (`HistGradientBoostingClassifier`, monotone: never
lower for a higher base score or a better base rank) learns at the
validation stage: histories are the training interactions, candidates the run model's top-N
with those masked, a candidate is positive when it is the user's validation item. A
recommendation to explain uses the test-stage history (training + validation interactions, the
test item never), the same item statistics, and the run model's top-N with that history masked.
SHAP values are `shap.TreeExplainer`'s exact values in the ranker's margin (log-odds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier

from recfuse.errors import DataError
from recfuse.models.base import Recommender, mask_histories
from recfuse.split import Split

FEATURES = ("base_score", "base_rank", "popularity", "similarity", "cooccurrence", "item_age_days")
LABELS = {
    "base_score": "the base model's score",
    "base_rank": "the base model's rank",
    "popularity": "popularity (training users)",
    "similarity": "title similarity to the history",
    "cooccurrence": "co-occurrence with the history",
    "item_age_days": "item age in days",
}
DAY_S = 86_400.0


@dataclass
class ItemStats:
    """Item-side facts from the training interactions only, and unit item-title vectors."""

    matrix: sp.csc_matrix  # [n_users, n_items] binary training interactions
    popularity: np.ndarray  # [n_items] training users per item
    first_seen: np.ndarray  # [n_items] first training timestamp (s), nan when none
    vectors: np.ndarray  # [n_items, d] L2-normalised title vectors
    titles: list[str]

    @classmethod
    def from_split(cls, split: Split, titles: Sequence[str], vectors: np.ndarray) -> ItemStats:
        train = split.train
        matrix = split.train_matrix().tocsc()
        popularity = np.asarray(matrix.sum(axis=0)).ravel().astype(np.int64)
        first = np.full(split.n_items, np.nan)
        earliest = train.groupby("item")["time"].min()
        first[earliest.index.to_numpy()] = earliest.to_numpy(dtype=float)
        return cls(matrix, popularity, first, np.asarray(vectors, np.float32), list(titles))


def item_vectors(titles: Sequence[str], model: str = "minilm") -> np.ndarray:
    """Unit MiniLM vectors of the item titles, float32 [n_items, 384] (cached by `embed`)."""
    from recfuse.features.embed import embed

    return embed([t or "(no title)" for t in titles], model)


def feature_rows(
    stats: ItemStats, history: np.ndarray, now: float, items: np.ndarray, base: np.ndarray
) -> np.ndarray:
    """The six features of ``items`` (the run model's list, best first) for one history:
    float64 [len(items), 6]."""
    n = len(items)
    if len(history):
        sims = (stats.vectors[items] @ stats.vectors[history].T).max(axis=1)
        both = stats.matrix[:, history].T @ stats.matrix[:, items]  # [H, N] shared users
        cooc = np.asarray(both.sum(axis=0)).ravel() / len(history)
    else:
        sims, cooc = np.zeros(n), np.zeros(n)
    age = (now - stats.first_seen[items]) / DAY_S
    age = np.where(np.isfinite(age), np.maximum(age, 0.0), -1.0)
    pop = stats.popularity[items].astype(float)
    rank = np.arange(1, n + 1, dtype=float)
    return np.column_stack([base, rank, pop, sims, cooc, age]).astype(np.float64)


@dataclass
class Candidates:
    """One user's top-N candidates of the run model with their feature rows."""

    user: int
    history: np.ndarray  # item indices, time order
    items: np.ndarray  # [N] the run model's top-N, best first
    features: np.ndarray  # [N, 6]


def candidates_for(
    model: Recommender,
    stats: ItemStats,
    users: np.ndarray,
    histories: Sequence[np.ndarray],
    nows: Sequence[float],
    n: int,
    batch: int = 256,
) -> list[Candidates]:
    """The run model's top-``n`` unseen items per user and their features, scored in chunks."""
    out = []
    for start in range(0, len(users), batch):
        u, h = users[start : start + batch], list(histories[start : start + batch])
        scores = np.array(model.score(u, h), dtype=np.float32, copy=True)
        raw = scores.copy()
        mask_histories(scores, h)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :n]
        for row, user in enumerate(u):
            items = top[row][np.isfinite(scores[row, top[row]])]
            now = float(nows[start + row])
            feats = feature_rows(stats, h[row], now, items, raw[row, items])
            out.append(Candidates(int(user), h[row], items, feats))
    return out


def stage_histories(split: Split, stage: str) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    """Per user with visible interactions at ``stage``: item indices in time order, last time."""
    frame = split.visible(stage)  # type: ignore[arg-type]
    groups = frame.groupby("user", sort=True)
    items = {int(u): g["item"].to_numpy() for u, g in groups}
    last = {int(u): float(g["time"].max()) for u, g in groups}
    return items, last


def new_ranker(seed: int) -> HistGradientBoostingClassifier:
    """Small boosted trees, a fixed 100 iterations (deterministic: reruns give the same SHAP
    values, so the same prompts and no new LLM calls), monotone in the base score and rank."""
    return HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=100,
        l2_regularization=1.0,
        early_stopping=False,
        monotonic_cst=[1, -1, 0, 0, 0, 0],
        random_state=seed,
    )


@dataclass
class RankerAnalysis:
    """A run model, its re-ranker, and what the explanation tools read from them."""

    model: Recommender
    stats: ItemStats
    ranker: HistGradientBoostingClassifier
    n_candidates: int
    seed: int
    info: dict[str, Any] = field(default_factory=dict)
    _test: list[Any] = field(default_factory=list, repr=False)

    @classmethod
    def fit(
        cls,
        model: Recommender,
        n_candidates: int = 50,
        seed: int = 0,
        max_users: int = 3000,
        vectors: np.ndarray | None = None,
    ) -> RankerAnalysis:
        """Train the re-ranker at the validation stage (training histories, validation labels)."""
        split = model.split_
        titles = _titles(model)
        vecs = item_vectors(titles) if vectors is None else vectors
        stats = ItemStats.from_split(split, titles, vecs)
        histories, last = stage_histories(split, "valid")
        targets = split.valid.groupby("user")["item"].apply(set).to_dict()
        users = np.array(sorted(u for u in targets if u in histories), dtype=np.int64)
        if len(users) > max_users:
            users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
        cands = candidates_for(
            model, stats, users, [histories[u] for u in users], [last[u] for u in users],
            n_candidates,
        )  # fmt: skip
        x = np.vstack([c.features for c in cands])
        y = np.concatenate([np.isin(c.items, list(targets[c.user])) for c in cands]).astype(int)
        if y.sum() < 2:
            raise DataError(
                f"{y.sum()} validation items among the run model's top-{n_candidates}: "
                "too few positives to train a re-ranker (raise --candidates)"
            )
        ranker = new_ranker(seed).fit(x, y)
        info = {"training users": len(users), "training rows": len(y),
                "positives": int(y.sum()), "iterations": int(ranker.n_iter_)}  # fmt: skip
        return cls(model, stats, ranker, n_candidates, seed, info)

    def margins(self, features: np.ndarray) -> np.ndarray:
        """The ranker's output (log-odds that the item is the user's next one): [N]."""
        return np.asarray(self.ranker.decision_function(features), dtype=np.float64)

    def shap(self, features: np.ndarray) -> tuple[np.ndarray, float]:
        """SHAP values of the ranker's margin per feature: ([N, 6], base value)."""
        import shap

        explainer = shap.TreeExplainer(self.ranker)
        values = np.asarray(explainer.shap_values(features), dtype=np.float64)
        base = float(np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)[-1])
        return values.reshape(len(features), len(FEATURES)), base

    def user_case(self, user: int, history: np.ndarray | None = None) -> Candidates:
        """The user's test-stage candidates (history: training + validation, or ``history``)."""
        split = self.model.split_
        if not self._test:  # computed once: every what-if call comes back here
            self._test.extend(stage_histories(split, "test"))
        histories, last = self._test
        if history is None:
            if user not in histories:
                raise DataError(f"user index {user} has no training or validation interactions")
            history = histories[user]
        now = last.get(user, float(split.train["time"].max()))
        return candidates_for(
            self.model, self.stats, np.array([user]), [history], [now], self.n_candidates
        )[0]

    def ranked(self, case: Candidates) -> tuple[np.ndarray, np.ndarray]:
        """Candidate positions by the ranker, best first, and the margins: ([N], [N])."""
        margins = self.margins(case.features)
        return np.argsort(-margins, kind="stable"), margins


def _titles(model: Recommender) -> list[str]:
    ids = getattr(model, "ids_", None)
    n = model.split_.n_items
    if ids is None or ids.titles is None:
        return [f"item {i}" for i in range(n)]
    return [str(t) for t in ids.titles]


def ranker_quality(analysis: RankerAnalysis, k: int = 10, max_users: int = 3000) -> pd.DataFrame:
    """HR@k and NDCG@k on the test targets, run model vs re-ranked top-N, per user (at most
    ``max_users``, drawn with the analysis seed; items outside the top-N count as misses).

    For the reader only (the ranker and every feature were built without the test items):
    columns user, base hr, base ndcg, ranker hr, ranker ndcg.
    """
    split = analysis.model.split_
    histories, last = stage_histories(split, "test")
    targets = split.test.groupby("user")["item"].first().to_dict()
    users = np.array(sorted(u for u in targets if u in histories), dtype=np.int64)
    if len(users) > max_users:
        rng = np.random.default_rng(analysis.seed)
        users = np.sort(rng.choice(users, max_users, replace=False))
    cands = candidates_for(
        analysis.model, analysis.stats, users, [histories[u] for u in users],
        [last[u] for u in users], analysis.n_candidates,
    )  # fmt: skip
    rows = []
    for c in cands:
        order, _ = analysis.ranked(c)
        base = _hit(c.items[:k], targets[c.user])
        rerank = _hit(c.items[order][:k], targets[c.user])
        rows.append({"user": c.user, "base hr": base[0], "base ndcg": base[1],
                     "ranker hr": rerank[0], "ranker ndcg": rerank[1]})  # fmt: skip
    return pd.DataFrame(rows)


def _hit(top: np.ndarray, target: int) -> tuple[float, float]:
    where = np.flatnonzero(top == target)
    if not len(where):
        return 0.0, 0.0
    return 1.0, float(1.0 / np.log2(where[0] + 2))
