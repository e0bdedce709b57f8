"""`recfuse study mmsrarec`: reward-shaped keyword summaries, collaborative keywords, an LM
recommender, and the summaries as item features for SASRec (text only: no images, no MLLM).

``prepare`` (per dataset, leave-one-out split seed 0):

1. keyword candidates for every item from SmolLM2 under several prompt variants (cached
   `LLMJob`s), the reward of each (`knowledge.keywords_reward`), best-of-n per item;
2. ``policy`` stage: one round of expert iteration on items outside a fixed held-out set
   (reward-filtered LoRA fine-tuning, merged and served by CTranslate2), then new candidates
   for the held-out items: the reward distribution before and after, paired per item;
3. MiniLM vectors of the best-of-n keywords (round 0, every item) and of the raw item text.

Cells: ``sasrec-id`` / ``sasrec-text`` / ``sasrec-kw`` (SASRec, gated fusion of the MiniLM
vectors of raw text or keywords) over ``seeds``; ``lm-kw`` / ``lm-kw-collab`` (the keyword LM
without / with the collaborative keyword block) over ``lm_seeds``, evaluated on a fixed random
sample of ``lm_users`` test users: ``sampled-100`` (1 positive + 99 unseen negatives, the same
candidates for every arm, SASRec included) and full ranking by retrieving with generated keywords.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from recfuse.models.training import TrainConfig
from recfuse.runs.study import (
    Cell,
    CellContext,
    CellResult,
    Results,
    Study,
    StudyConfig,
    StudyFolder,
    Summary,
    fingerprint,
)

Stage = Literal["policy", "sasrec", "lm"]
STAGES: tuple[Stage, ...] = ("policy", "sasrec", "lm")
SASREC_ARMS = ("sasrec-id", "sasrec-text", "sasrec-kw")
LM_ARMS = ("lm-kw", "lm-kw-collab")
S100 = "s100 "  # prefix of sampled-100 metric names


class MMSRARecConfig(StudyConfig):
    """Budgets of every step; ``stages`` picks what runs (keywords always: they are cached)."""

    stages: list[Stage] = Field(default_factory=lambda: list(STAGES))
    backend: str = Field("auto", description="LLM backend kind for keyword generation")
    llm_threads: int = Field(2, ge=1, le=64)
    variants: list[str] = Field(default_factory=lambda: ["short", "medium", "topic"], min_length=1)
    item_limit: int | None = Field(None, ge=1, description="keywords for the first N items only")
    policy_eval_items: int = Field(300, ge=2, description="held-out items regenerated")
    policy_max_examples: int = Field(180, ge=1)
    policy_keep_quantile: float = Field(0.5, ge=0.0, lt=1.0)
    policy_lr: float = Field(5e-4, gt=0)
    policy_backend: Literal["ctranslate2", "transformers"] = "ctranslate2"
    lm_seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    lm_users: int = Field(30, ge=2, description="fixed random sample of test users")
    lm_examples: int = Field(120, ge=1, description="next-item SFT examples")
    lm_recon_fraction: float = Field(0.25, ge=0.0, le=1.0)
    lm_negatives: int = Field(99, ge=1)
    lm_lr: float = Field(5e-4, gt=0)
    lm_batch: int = Field(8, ge=1)
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(epochs=200, patience=10, progress=False)
    )

    #: what runs, and the policy round (whose report no cell reads), are not part of cell keys
    EXECUTION_FIELDS: ClassVar[frozenset[str]] = StudyConfig.EXECUTION_FIELDS | {
        "stages", "llm_threads", "lm_seeds", "policy_eval_items", "policy_max_examples",
        "policy_keep_quantile", "policy_lr", "policy_backend",
    }  # fmt: skip


@dataclass
class Prepared:
    """One dataset's prepared inputs (kept in memory; forked workers inherit them)."""

    split: Any
    texts: list[str]
    keywords: list[str]
    text_vectors: np.ndarray
    keyword_vectors: np.ndarray
    users: np.ndarray
    candidates: np.ndarray
    report: dict[str, Any]
    keys: dict[str, str]


class MMSRARecStudy(Study[MMSRARecConfig]):
    name = "mmsrarec"
    config_type = MMSRARecConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # end to end in about two minutes on a shared CPU; numbers mean nothing
        "smoke": {
            "item_limit": 24, "variants": ["short", "topic"], "llm_threads": 1,
            "policy_eval_items": 8, "policy_max_examples": 4, "policy_backend": "transformers",
            "seeds": [0], "lm_users": 4, "lm_examples": 4, "lm_negatives": 9,
            "train": {"epochs": 2, "patience": 1, "valid_users": 200, "progress": False},
        },
        # what the heavy queue allows on 2 CPU cores (docs/mmsrarec.md gives the budgets)
        "cpu": {},
    }  # fmt: skip

    def __init__(self) -> None:
        self.prepared: dict[str, Prepared] = {}

    def prepare(self, config: MMSRARecConfig, folder: StudyFolder) -> None:
        from recfuse.studies.mmsrarec_prepare import prepare_dataset

        for ds in config.datasets:
            self.prepared[ds] = prepare_dataset(ds, config, folder)

    def inputs(self, cell: Cell, config: MMSRARecConfig) -> dict[str, Any]:
        return self.prepared[cell.dataset].keys

    def cells(self, config: MMSRARecConfig, done: Results) -> list[Cell]:
        out = []
        for ds in config.datasets:
            if "sasrec" in config.stages:
                out += [Cell(a, s, ds) for s in config.seeds for a in SASREC_ARMS]
            if "lm" in config.stages:
                out += [Cell(a, s, ds) for s in config.lm_seeds for a in LM_ARMS]
        return out

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        from recfuse.studies.mmsrarec_cells import run_lm, run_sasrec

        state = self.prepared[cell.dataset]
        if cell.arm_name in SASREC_ARMS:
            return run_sasrec(cell, ctx, state)
        return run_lm(cell, ctx, state)

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        from recfuse.studies.mmsrarec_report import summarize

        return summarize(results, folder, self.prepared)


def sampled_candidates(
    split: Any, users: np.ndarray, n_negatives: int, seed: int = 1
) -> np.ndarray:
    """[U, 1 + n] item indices: column 0 each user's test item, then ``n`` distinct items drawn
    uniformly from those the user has not seen at test time (the target excluded)."""
    rng = np.random.default_rng(seed)
    histories = split.histories("test")
    target = split.test.drop_duplicates("user").set_index("user")["item"]
    out = np.zeros((len(users), 1 + n_negatives), dtype=np.int64)
    for row, u in enumerate(users):
        allowed = np.ones(split.n_items, dtype=bool)
        allowed[histories[u]] = False
        allowed[target[u]] = False
        out[row, 0] = target[u]
        out[row, 1:] = rng.choice(np.flatnonzero(allowed), n_negatives, replace=False)
    return out


def sampled_metrics(users: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Per-user sampled metrics from candidate scores [U, 1 + n] (column 0 the positive):
    pessimistic rank (every negative scoring >= the positive ranks above it)."""
    from recfuse.evaluation.metrics import ranking_metrics

    scores = np.nan_to_num(scores, nan=-np.inf)
    ranks = np.count_nonzero(scores[:, 1:] >= scores[:, :1], axis=1).astype(np.float64)
    per = ranking_metrics(
        ranks, np.arange(len(users)), np.ones(len(users), dtype=np.int64), (1, 10)
    )
    frame = pd.DataFrame({"user": users})
    for name in ("NDCG@10", "Hit@10", "Hit@1", "MRR"):
        frame[S100 + name] = per[name]
    return frame


__all__ = [
    "LM_ARMS",
    "SASREC_ARMS",
    "MMSRARecConfig",
    "MMSRARecStudy",
    "Prepared",
    "fingerprint",
    "sampled_candidates",
    "sampled_metrics",
]
