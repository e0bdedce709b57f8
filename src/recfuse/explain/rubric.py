"""Scoring explanations: the paper's 7-metric rubric by an LLM judge panel, and checks that
keep the judges honest.

The panel: every (explanation, metric) is scored 1-7 by each judge prompt of the panel; a judge's
score is the expectation over the seven answers' probabilities (`LLM.score` over " 1".." 7", so a
judge can never answer off the scale). Any backend can sit on the panel (an OpenAI-compatible
endpoint too); here SmolLM2 with two phrasings.

The checks read the text itself:

* specificity — numbers cited that match an analysis result (within 2% or 0.5), capped at 10;
* groundedness — the share of cited numbers that match (no number cited: 0);
* conciseness — 1 at the target length, falling linearly to 0 at twice or zero of it;
* cost consideration — both prices cited (0.5) and a profit-optimal N of the table stated (0.5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recfuse.llm import LLMJob, PromptRecord, PromptTemplate

METRICS = (
    "Specificity",
    "Clarity",
    "Conciseness",
    "Practicality",
    "Contextual Relevance",
    "Cost Consideration",
    "Crop Science Credibility",
)
DEFINITIONS = {
    "Specificity": "gives concrete numbers and field zones rather than generalities",
    "Clarity": "is easy for a farmer to follow",
    "Conciseness": "says what matters without padding or repetition",
    "Practicality": "tells the farmer what to do, in actions they can take",
    "Contextual Relevance": "is about this field, these zones and these years",
    "Cost Consideration": "weighs the price of nitrogen against the value of the extra yield",
    "Crop Science Credibility": "is agronomically sound and claims nothing the analyses do not show",
}
PANEL = (
    PromptTemplate(
        version="xai-judge-a-v1",
        system="You are a strict crop scientist grading advice written for farmers.",
        trusted_fields=("metric", "definition"),
        user=(
            "Grade this explanation on {metric} (it {definition}).\n{explanation}\n"
            "Give a grade from 1 (very poor) to 7 (excellent). Grade:"
        ),
    ),
    PromptTemplate(
        version="xai-judge-b-v1",
        system="You evaluate agricultural extension texts.",
        trusted_fields=("metric", "definition"),
        user=(
            "Criterion: {metric} — the text {definition}.\nText:\n{explanation}\n"
            "On a scale of 1 to 7, how well does the text meet the criterion? Answer:"
        ),
    ),
)
GRADES = tuple(f" {g}" for g in range(1, 8))


@dataclass(frozen=True)
class Rubric:
    """The seven metrics, what each means, and the judge prompts that grade them."""

    metrics: tuple[str, ...]
    definitions: Mapping[str, str]
    panel: tuple[PromptTemplate, ...]


AGRONOMY = Rubric(METRICS, DEFINITIONS, PANEL)
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)?")


def panel_scores(
    texts: Sequence[str],
    ids: Sequence[str],
    llm: Any,
    cache: Any = None,
    name: str = "xai-judge",
    rubric: Rubric = AGRONOMY,
) -> dict[tuple[str, str, int], float]:
    """Expected 1-7 grade per (text id, metric, judge index), one batched score job per judge."""
    out: dict[tuple[str, str, int], float] = {}
    for j, template in enumerate(rubric.panel):
        records = [
            PromptRecord(
                f"{tid}|{m}", {"metric": m, "definition": rubric.definitions[m], "explanation": t}
            )
            for tid, t in zip(ids, texts, strict=True)
            for m in rubric.metrics
        ]
        job_name = f"{name}-{j}"
        job = LLMJob(
            job_name,
            records,
            template,
            backend=llm,
            task="score",
            options=GRADES,
            cache=cache,
            progress=False,
        )
        job.run()
        for row in job.cache.job_outputs(job_name):
            tid, metric = row["id"].split("|", 1)
            probs = row["parsed"]["probs"]
            out[(tid, metric, j)] = float(sum(p * int(o) for o, p in probs.items()))
    return out


def cited_numbers(text: str) -> list[float]:
    """Every number written in ``text`` (decimal commas read as points)."""
    return [float(m.replace(",", ".")) for m in NUMBER.findall(text)]


def matches(value: float, known: Sequence[float]) -> bool:
    """Whether ``value`` is one of the ``known`` results (within 2% or 0.5)."""
    return any(abs(value - k) <= max(0.5, 0.02 * abs(k)) for k in known)


def checks(
    text: str,
    known: Sequence[float],
    prices: tuple[float, float],
    optimal_ns: Sequence[float],
    target_words: int = 120,
) -> dict[str, float]:
    """The four deterministic scores of one explanation, each in [0, 1]."""
    cited = cited_numbers(text)
    price_hits = sum(any(abs(v - p) <= 0.01 * max(p, 1) for v in cited) for p in prices)
    n_hit = any(matches(v, optimal_ns) for v in cited) if optimal_ns else False
    return number_checks(text, known, target_words, "cost", 0.25 * price_hits + 0.5 * float(n_hit))


def number_checks(
    text: str, known: Sequence[float], target_words: int, last: str, last_score: float
) -> dict[str, float]:
    """Specificity, groundedness, conciseness, the use's own fourth check (``last``: its
    score), then the counts behind them (numbers cited, words)."""
    cited = cited_numbers(text)
    grounded = [v for v in cited if matches(v, known)]
    words = len(text.split())
    return {
        "specificity": min(len(grounded), 10) / 10,
        "groundedness": len(grounded) / len(cited) if cited else 0.0,
        "conciseness": float(max(0.0, 1 - abs(words - target_words) / target_words)),
        last: last_score,
        "numbers cited": float(len(cited)),
        "words": float(words),
    }


def early_stop(curve: Sequence[float], patience: int) -> int:
    """The round early stopping keeps: the best so far when ``patience`` rounds bring no gain."""
    best, best_round, bad = -np.inf, 0, 0
    for r, value in enumerate(curve):
        if value > best:
            best, best_round, bad = value, r, 0
        else:
            bad += 1
            if bad >= patience:
                break
    return best_round


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


# ---- the recommender use: the same seven slots, the two domain metrics recast -------------------
RANKER_METRICS = (
    "Specificity",
    "Clarity",
    "Conciseness",
    "Practicality",
    "Contextual Relevance",
    "Feature Attribution",  # the paper's Cost Consideration: what weighed how much
    "Faithfulness",  # the paper's Crop Science Credibility: sound, nothing the analyses lack
)
RANKER_DEFINITIONS = {
    "Specificity": "gives concrete numbers, items and factors rather than generalities",
    "Clarity": "is easy for the user to follow",
    "Conciseness": "says what matters without padding or repetition",
    "Practicality": "tells the user which of their own items led to the recommendation",
    "Contextual Relevance": "is about this user, their history and this item",
    "Feature Attribution": "says which factors pushed the recommendation up or down, and how much",
    "Faithfulness": "claims nothing the recommender's analyses do not show",
}
RANKER = Rubric(
    RANKER_METRICS,
    RANKER_DEFINITIONS,
    (
        PromptTemplate(
            version="explain-judge-a-v1",
            system="You are a strict reviewer of explanations that recommender systems give users.",
            trusted_fields=("metric", "definition"),
            user=(
                "Grade this explanation on {metric} (it {definition}).\n{explanation}\n"
                "Give a grade from 1 (very poor) to 7 (excellent). Grade:"
            ),
        ),
        PromptTemplate(
            version="explain-judge-b-v1",
            system="You evaluate explanations written for the users of a recommender.",
            trusted_fields=("metric", "definition"),
            user=(
                "Criterion: {metric} — the text {definition}.\nText:\n{explanation}\n"
                "On a scale of 1 to 7, how well does the text meet the criterion? Answer:"
            ),
        ),
    ),
)
#: words that name a ranker feature in an explanation (lower case, substrings)
FEATURE_WORDS = {
    "base_score": ("score",),
    "base_rank": ("rank",),
    "popularity": ("popular",),
    "similarity": ("similar",),
    "cooccurrence": ("together", "co-occur", "cooccur", "shared", "other users", "also "),
    "item_age_days": (" age", " old", "recent", "days", " new"),
}


def ranker_checks(
    text: str, known: Sequence[float], title: str, top_feature: str, target_words: int = 100
) -> dict[str, float]:
    """The four deterministic scores of one recommender explanation, each in [0, 1]: the
    number checks, and attribution = the item named (0.5) and its largest-|SHAP| feature (0.5)."""
    lower = f" {text.lower()}"
    core = re.sub(r"\s*\(\d{4}\)\s*$", "", title).strip().lower()
    core = re.sub(r",\s*(the|a|an)$", "", core)  # "Godfather, The" is written "The Godfather"
    named = bool(core) and core in lower
    feature = any(w in lower for w in FEATURE_WORDS[top_feature])
    return number_checks(text, known, target_words, "attribution", 0.5 * named + 0.5 * feature)
