"""The recommender use's typed tool set: what the agent may ask about one recommendation.

Each tool reads a `RankerCase` (one user's re-ranked candidates, the explained item and its SHAP
values) and returns a short text plus every number in it; the deterministic checks hold an
explanation to those numbers. Item titles in the texts are data (fenced in the prompts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recfuse.errors import ConfigError
from recfuse.explain.ranker import FEATURES, LABELS, RankerAnalysis
from recfuse.explain.rubric import cited_numbers
from recfuse.explain.tools import POLICY_DIR, ToolGate

RANKER_POLICY_DIR = POLICY_DIR / "ranker"
Feature = Literal[
    "base_score", "base_rank", "popularity", "similarity", "cooccurrence", "item_age_days"
]


class ShapValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Literal["shap_value"] = "shap_value"
    feature: Feature = "similarity"


class SimilarHistory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Literal["similar_history"] = "similar_history"
    k: int = Field(3, ge=1, le=5)


class PopularityRank(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Literal["popularity_rank"] = "popularity_rank"


class Cooccurrence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Literal["cooccurrence"] = "cooccurrence"
    k: int = Field(3, ge=1, le=5)


class WhatIfRemove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Literal["what_if_remove"] = "what_if_remove"
    item: str = Field(..., min_length=1, max_length=64, description="raw id of a history item")


RANKER_TOOLS: dict[str, type[BaseModel]] = {
    "shap_value": ShapValue,
    "similar_history": SimilarHistory,
    "popularity_rank": PopularityRank,
    "cooccurrence": Cooccurrence,
    "what_if_remove": WhatIfRemove,
}
assert set(FEATURES) == set(Feature.__args__)  # type: ignore[attr-defined]


@dataclass
class RankerCase:
    """One recommendation to explain: the user's candidates, the ranker's order, SHAP values.

    ``position`` indexes the explained item in ``case.items``; ``shap`` is [N, 6] over every
    candidate, ``margins`` [N] the ranker's log-odds.
    """

    analysis: RankerAnalysis
    user_id: str
    user: int
    case: Any  # ranker.Candidates
    order: np.ndarray
    margins: np.ndarray
    shap: np.ndarray
    base_value: float
    position: int

    @classmethod
    def build(cls, analysis: RankerAnalysis, user_id: str, rank: int = 1) -> RankerCase:
        """The ranker's ``rank``-th recommendation for raw user ``user_id``."""
        user = analysis.model.ids_.user_index(user_id)
        case = analysis.user_case(user)
        order, margins = analysis.ranked(case)
        if not 1 <= rank <= len(order):
            raise ConfigError(f"--rank {rank}: the ranker has {len(order)} candidates")
        values, base = analysis.shap(case.features)
        return cls(analysis, str(user_id), user, case, order, margins, values, base,
                   int(order[rank - 1]))  # fmt: skip

    @property
    def item(self) -> int:
        return int(self.case.items[self.position])

    def title(self, item: int) -> str:
        return self.analysis.stats.titles[item]

    def raw_item(self, item: int) -> str:
        return str(self.analysis.model.ids_.item_ids[item])

    def ranked_features(self) -> list[str]:
        """Features by |SHAP| for the explained item, largest first."""
        row = self.shap[self.position]
        return [FEATURES[i] for i in np.argsort(-np.abs(row), kind="stable")]

    def similar_history(self, k: int) -> list[tuple[int, float]]:
        """The history items whose titles are closest to the item's (MiniLM cosine)."""
        hist = np.unique(self.case.history)
        vecs = self.analysis.stats.vectors
        sims = vecs[hist] @ vecs[self.item]
        top = np.argsort(-sims, kind="stable")[:k]
        return [(int(hist[i]), float(sims[i])) for i in top]


def run_ranker_tool(call: BaseModel, case: RankerCase) -> dict[str, Any]:
    """The tool's result: ``{"text": str, "numbers": [every number in the text]}``."""
    if isinstance(call, ShapValue):
        text = _shap_text(case, call.feature)
    elif isinstance(call, SimilarHistory):
        pairs = case.similar_history(call.k)
        text = f'History items whose titles are most similar to "{case.title(case.item)}" ' + (
            "(MiniLM cosine): " + ", ".join(f'"{case.title(i)}" {s:.2f}' for i, s in pairs)
        )
    elif isinstance(call, PopularityRank):
        text = _popularity_text(case)
    elif isinstance(call, Cooccurrence):
        text = _cooccurrence_text(case, call.k)
    elif isinstance(call, WhatIfRemove):
        text = _what_if_text(case, call.item)
    else:
        raise TypeError(f"not a ranker tool call: {call!r}")
    return {"text": text, "numbers": cited_numbers(text)}


def _shap_text(case: RankerCase, feature: str) -> str:
    j = FEATURES.index(feature)
    value = case.case.features[case.position, j]
    contribution = case.shap[case.position, j]
    share = np.mean(case.shap[:, j] < contribution) * 100
    return (
        f"SHAP value of {LABELS[feature]} for the recommended item: {contribution:+.2f} log-odds "
        f"(feature value {_fmt(value)}); it is higher than for {share:.0f}% of the "
        f"{len(case.order)} candidates"
    )


def _popularity_text(case: RankerCase) -> str:
    pop = case.analysis.stats.popularity
    count = int(pop[case.item])
    rank = int((pop > count).sum()) + 1
    return (
        f'"{case.title(case.item)}" has {count} training users: popularity rank {rank} of '
        f"{len(pop)} items (top {100 * rank / len(pop):.1f}%)"
    )


def _cooccurrence_text(case: RankerCase, k: int) -> str:
    stats = case.analysis.stats
    hist = np.unique(case.case.history)
    shared = np.asarray((stats.matrix[:, hist].T @ stats.matrix[:, [case.item]]).todense()).ravel()
    top = np.argsort(-shared, kind="stable")[:k]
    parts = ", ".join(f'"{case.title(int(hist[i]))}" {int(shared[i])} users' for i in top)
    return (
        f'History items most often shared with "{case.title(case.item)}" by training users: {parts}'
    )


def _what_if_text(case: RankerCase, raw_item: str) -> str:
    analysis = case.analysis
    (index,) = analysis.model.ids_.item_indices([raw_item])
    if index not in set(case.case.history.tolist()):
        raise ValueError(f"what_if_remove: item {raw_item} is not in user {case.user_id}'s history")
    history = case.case.history[case.case.history != index]
    other = analysis.user_case(case.user, history)
    order, margins = analysis.ranked(other)
    removed, item = case.title(int(index)), case.title(case.item)
    where = np.flatnonzero(other.items == case.item)
    if not len(where):
        return (
            f'Without "{removed}" in the history, "{item}" leaves the base model\'s top '
            f"{analysis.n_candidates}; the new top recommendation is "
            f'"{case.title(int(other.items[order[0]]))}"'
        )
    rank = int(np.flatnonzero(order == where[0])[0]) + 1
    return (
        f'Without "{removed}" in the history, "{item}" has ranker output '
        f"{margins[where[0]]:+.2f} log-odds (was {case.margins[case.position]:+.2f}) and rank "
        f"{rank} (was {int(np.flatnonzero(case.order == case.position)[0]) + 1}); "
        f'the top recommendation would be "{case.title(int(other.items[order[0]]))}"'
    )


def ranker_summary(case: RankerCase, recent: int = 5) -> dict[str, Any]:
    """Round 0's input: the recommendation, the ranker's output and every feature's SHAP value."""
    i = case.position
    margin = case.margins[i]
    prob = 1 / (1 + np.exp(-margin))
    shap_parts = ", ".join(
        f"{LABELS[f]} {case.shap[i, FEATURES.index(f)]:+.2f} "
        f"(value {_fmt(case.case.features[i, FEATURES.index(f)])})"
        for f in case.ranked_features()
    )
    history = ", ".join(f'"{case.title(int(h))}"' for h in case.case.history[-recent:][::-1])
    rank = int(np.flatnonzero(case.order == i)[0]) + 1
    text = (
        f"A recommender re-ranked {len(case.order)} candidate items for user {case.user_id} and "
        f'puts "{case.title(case.item)}" at rank {rank}. The re-ranker\'s output for it is '
        f"{margin:+.2f} log-odds (base value {case.base_value:+.2f}; a {100 * prob:.1f}% chance "
        f"that it is the user's next item). SHAP values (log-odds) per feature, largest first: "
        f"{shap_parts}. The user's {min(recent, len(case.case.history))} most recent items: "
        f"{history}."
    )
    return {"text": text, "numbers": cited_numbers(text)}


def _fmt(value: float) -> str:
    return (
        f"{value:.0f}" if abs(value - round(value)) < 1e-9 or abs(value) >= 100 else f"{value:.2f}"
    )


def ranker_gate(ledger_path: str | Path) -> ToolGate:
    """The Cedar gate of the recommender tools (`policies/ranker`), with its ledger."""
    return ToolGate(
        ledger_path,
        actor="explain-agent",
        tools=RANKER_TOOLS,
        runner=run_ranker_tool,
        policy_dir=RANKER_POLICY_DIR,
    )
