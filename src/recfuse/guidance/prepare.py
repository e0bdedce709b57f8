"""From a split to gated teacher supervision: holdout → pairs → teacher → gate, training data only.

`prepare_guidance` runs the offline part of selective LLM guidance once per dataset and
backbone: a backbone fitted on the training prefixes gives hard negatives and its uncertainty;
the teacher scores every pair; the gate is cross-fitted on whether the teacher was right. The
result is a table with one row per pair, which every training arm reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recfuse.evaluation.validation import fit_validated
from recfuse.guidance.gate import GateFit, GateKind, fit_gate, gate_features, score_entropy
from recfuse.guidance.pairs import PairSet, build_pairs, check_pairs, holdout_split
from recfuse.guidance.teachers import Teacher, TeacherOutput
from recfuse.models.base import Recommender
from recfuse.split import Split


@dataclass
class Prepared:
    """``table``: one row per pair — user, pos, neg, kind, p, right, hist_len, pop_i, pop_j,
    entropy, margin, g. ``prefixes``: per user index, the prefix history."""

    table: pd.DataFrame
    prefixes: list[np.ndarray]
    teacher: TeacherOutput | None = None
    gate: GateFit | None = None
    info: dict[str, Any] = field(default_factory=dict)


def backbone_uncertainty(
    model: Recommender, pairs: PairSet, batch: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: entropy of the prefix backbone's softmax over all items, and s_pos − s_neg."""
    frame = pairs.pairs
    prefixes = pairs.prefixes()
    users = np.unique(frame["user"].to_numpy())
    ent = np.zeros(pairs.holdout.n_users)
    scores_pos = np.zeros(len(frame))
    scores_neg = np.zeros(len(frame))
    for lo in range(0, len(users), batch):
        us = users[lo : lo + batch]
        s = np.asarray(model.score(us, [prefixes[u] for u in us]), dtype=np.float64)
        ent[us] = score_entropy(s)
        row_of = {u: r for r, u in enumerate(us)}
        mask = frame["user"].isin(us).to_numpy()
        rows = np.array([row_of[u] for u in frame["user"].to_numpy()[mask]], dtype=np.int64)
        scores_pos[mask] = s[rows, frame["pos"].to_numpy()[mask]]
        scores_neg[mask] = s[rows, frame["neg"].to_numpy()[mask]]
    return ent[frame["user"].to_numpy()], scores_pos - scores_neg


def prepare_guidance(
    split: Split,
    make_backbone: Callable[[], Recommender],
    teacher: Teacher,
    texts: Sequence[str],
    dataset: str,
    n_hard: int = 3,
    n_pop: int = 2,
    top_k: int = 50,
    gate: GateKind = "logistic",
    seed: int = 0,
) -> Prepared:
    """The whole offline stage on ``split``'s training period (see the module docstring)."""
    started = time.perf_counter()
    holdout = holdout_split(split)
    prefix_model = fit_validated(make_backbone(), holdout)
    backbone_s = time.perf_counter() - started
    pairs = build_pairs(holdout, prefix_model, n_hard, n_pop, top_k, seed)
    check_pairs(pairs, split)
    entropy, margin = backbone_uncertainty(prefix_model, pairs)
    out = teacher.preferences(pairs, texts, dataset)
    table = pairs.pairs.copy()
    pop = np.bincount(holdout.train["item"].to_numpy(), minlength=split.n_items)
    prefixes = pairs.prefixes()
    table["p"] = out.p
    table["right"] = (out.p > 0.5).astype(int)  # truth: the user took pos
    table["hist_len"] = [len(prefixes[u]) for u in table["user"]]
    table["pop_i"], table["pop_j"] = pop[table["pos"]], pop[table["neg"]]
    table["entropy"], table["margin"] = entropy, margin
    x = gate_features(
        table["hist_len"].to_numpy(),
        table["pop_i"].to_numpy(),
        table["pop_j"].to_numpy(),
        entropy,
        margin,
        out.p,
    )
    fit = fit_gate(x, table["right"].to_numpy(), table["user"].to_numpy(), gate, seed=seed)
    table["g"] = fit.g
    info = {
        "pairs": len(table),
        "users": int(table["user"].nunique()),
        "backbone_seconds": round(backbone_s, 2),
        "prefix_backbone_valid": float(getattr(prefix_model, "best_valid_", float("nan"))),
        "teacher_cost": out.cost,
        "position_bias": out.position_bias(),
        "gate_weights": fit.weights,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return Prepared(table, prefixes, out, fit, info)


def accuracy_by(table: pd.DataFrame, column: str, bins: int = 5) -> pd.DataFrame:
    """Teacher accuracy (share right) and pair count per quantile bin of ``column``."""
    ranks = table[column].rank(method="first")
    cut = pd.qcut(ranks, q=min(bins, len(table)), labels=False)
    rows = []
    for _, part in table.groupby(cut, sort=True):
        lo, hi = part[column].min(), part[column].max()
        rows.append((f"{column} {lo:g}-{hi:g}", len(part), float(part["right"].mean())))
    return pd.DataFrame(rows, columns=["bin", "pairs", "teacher_accuracy"])
