"""The refined training sets of one (dataset, seed): every data arm's edges, made once.

All writes and drops go through one `RefinementGate` (ledger in the study folder). The
discriminator's and the loss-based pruning's drop fractions are candidates; a cell picks one on
validation recall, and the random-drop control then drops as many edges as that choice did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recfuse.augment.discriminator import (
    discriminate,
    labelled_check,
    mf_edge_scores,
    random_drop,
)
from recfuse.augment.gate import RefinementGate
from recfuse.augment.generator import (
    GeneratorSettings,
    generate,
    random_synthetic,
    real_edges,
    tail_mask,
)
from recfuse.augment.teachers import SimilarityTeacher, Teacher
from recfuse.split import Split

#: data arms; "rand-drop" is made after "disc" chose its fraction
DATA_ARMS = ("original", "gen", "rand-gen", "disc", "gen+disc", "rand-drop", "loss-prune",
             "disc-weight")  # fmt: skip
#: arms whose drop fraction is chosen on validation among the candidates
SELECTED = {"disc", "gen+disc", "loss-prune", "disc-weight"}


@dataclass
class RefinedData:
    """Edges of every data arm (``edges[(arm, fraction)]``; fraction None: no drop), the
    discriminator's thresholds per fraction, its labelled checks and the costs."""

    split: Split
    edges: dict[tuple[str, float | None], pd.DataFrame] = field(default_factory=dict)
    thresholds: dict[float, float] = field(default_factory=dict)
    checks: dict[float, dict[str, float]] = field(default_factory=dict)
    #: the generator's teacher's labelled check (threshold 0.5) when another model judges edges
    teacher_check: dict[str, float] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)

    def get(self, arm: str, fraction: float | None = None) -> pd.DataFrame:
        return self.edges[(arm, fraction)]


@dataclass(frozen=True)
class DropSettings:
    """The discriminator's side of a refinement.

    Args:
        fractions: drop-fraction candidates (each arm picks one on validation).
        check_pairs: validation pairs (and as many non-edges) of the labelled check.
        downweight: ``disc-weight`` keeps the lowest edges at this fraction of their weight.
        judge: ``teacher`` (the generator's teacher scores every edge) or ``minilm`` (MiniLM
            does, the affordable choice with an LLM generator: an LLM judge of every training
            edge is tens of thousands of prompts); the teacher's own labelled check is kept.
    """

    fractions: list[float]
    check_pairs: int = 2000
    downweight: float = 0.25
    judge: str = "teacher"


def refine(
    split: Split, vectors: np.ndarray, teacher_factory: Any, settings: GeneratorSettings,
    drops: DropSettings, seed: int, ledger: Path,
) -> RefinedData:  # fmt: skip
    """Build every arm's edges for one split and seed (see the module docstring)."""
    rng = np.random.default_rng(seed)
    profiles = SimilarityTeacher(vectors, split)
    generator_teacher: Teacher = teacher_factory(split, profiles)
    teacher = profiles if drops.judge == "minilm" else generator_teacher
    fractions, check_pairs = drops.fractions, drops.check_pairs
    tail = tail_mask(split)
    gate = RefinementGate(split, ledger, tail)
    out = RefinedData(split)
    real = real_edges(split)
    calls0 = _calls(generator_teacher)
    started = time.perf_counter()
    synthetic = generate(split, generator_teacher, profiles, gate, settings, rng)
    gen_s = time.perf_counter() - started
    out.edges[("original", None)] = real
    out.edges[("gen", None)] = pd.concat([real, synthetic], ignore_index=True)
    control = random_synthetic(split, synthetic, gate, settings.weight, rng)
    out.edges[("rand-gen", None)] = pd.concat([real, control], ignore_index=True)
    started = time.perf_counter()
    both = out.edges[("gen", None)]
    both_scores = teacher.score(both["user"].to_numpy(), both["item"].to_numpy())
    disc_s = time.perf_counter() - started
    real_scores = both_scores[: len(real)]  # real rows come first in "gen"
    loss_scores = mf_edge_scores(split, real, seed=seed)
    for f in fractions:
        out.edges[("disc", f)] = discriminate(real, real_scores, f, gate, f"disc@{f}")
        out.edges[("gen+disc", f)] = discriminate(both, both_scores, f, gate, f"gen+disc@{f}")
        out.edges[("disc-weight", f)] = discriminate(real, real_scores, f, gate,
                                                     f"disc-weight@{f}", drops.downweight)  # fmt: skip
        out.edges[("loss-prune", f)] = discriminate(real, loss_scores, f, gate, f"loss@{f}")
        out.edges[("rand-drop", f)] = random_drop(real, int(round(f * len(real))), gate, rng)
        out.thresholds[f] = float(np.quantile(real_scores, f))
        out.checks[f] = labelled_check(teacher, split, out.thresholds[f], rng, check_pairs)
    if teacher is not generator_teacher:  # the quality of the generator's judge, too
        out.teacher_check = labelled_check(generator_teacher, split, 0.5, rng, check_pairs)
    out.cost = {
        "teacher": generator_teacher.name,
        "discriminator": teacher.name,
        "teacher_calls": _calls(generator_teacher) - calls0,
        "generator_seconds": round(gen_s, 2),
        "discriminator_seconds": round(disc_s, 2),
        "synthetic_edges": len(synthetic),
        "tail_items": int(tail.sum()),
        "gate_denied": gate.denied,
        "ledger_entries": gate.ledger.size(),
        "llm_report": getattr(generator_teacher, "report", {}),
    }
    gate.close()
    return out


def _calls(teacher: Teacher) -> int:
    return int(getattr(teacher, "calls", 0))
