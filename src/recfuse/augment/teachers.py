"""Teachers: who judges whether a (user, item) edge is compatible.

A teacher scores edges given the users' *training* histories only (never valid/test). For an
edge already in a history the user's profile leaves that item out, so a real edge is judged on
the rest of the history exactly as a new (synthetic) candidate would be.

- `SimilarityTeacher`: cosine between the item's frozen text vector (MiniLM) and the mean of
  the vectors of the user's other training items. Cheap; runs everywhere.
- `LLMTeacher`: an LLM answers "yes"/"no" to a fenced prompt with the user's recent titles and
  the candidate's title; the score is P(yes) renormalised over the two options. Runs as one
  resumable `LLMJob` (SQLite cache: a rerun costs no model call).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from recfuse.split import Split


class Teacher(Protocol):
    """Compatibility score of each (user, item) edge; higher = more compatible."""

    name: str

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """users, items: int arrays [n] -> float64 [n]."""
        ...


def train_histories(split: Split) -> list[np.ndarray]:
    """Per user, the time-ordered training items (what every teacher may see)."""
    return split.histories("valid")


@dataclass
class SimilarityTeacher:
    """Cosine of the item vector with the user's leave-this-item-out mean training vector.

    Args:
        vectors: unit item vectors [n_items, d] (e.g. MiniLM, last layer, mean pooling).
        split: its training period builds the profiles.
    """

    vectors: np.ndarray
    split: Split
    name: str = "minilm"
    calls: int = 0

    def __post_init__(self) -> None:
        hist = train_histories(self.split)
        self._sum = np.zeros((self.split.n_users, self.vectors.shape[1]), dtype=np.float64)
        self._count = np.array([len(h) for h in hist], dtype=np.float64)
        train = self.split.train
        self._member = np.unique(train["user"].to_numpy() * self.split.n_items + train["item"])
        for u, h in enumerate(hist):
            if len(h):
                self._sum[u] = self.vectors[h].sum(axis=0)

    def profiles(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Unit profile vectors [n, d]; with ``items``, each leaves its own item out."""
        total = self._sum[users].copy()
        count = self._count[users].copy()
        if items is not None:
            codes = np.asarray(users, np.int64) * self.split.n_items + np.asarray(items)
            inside = np.isin(codes, self._member)
            total[inside] -= self.vectors[items[inside]]
            count[inside] -= 1
        total /= np.maximum(count, 1.0)[:, None]
        return total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)

    def score(self, users: np.ndarray, items: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """cos(S_u − [i ∈ u] v_i, v_i) with S_u the user's sum vector (the mean's 1/n cancels),
        computed from S_u·v_i and |S_u|² without building each leave-one-out profile."""
        self.calls += len(users)
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        codes = users * self.split.n_items + items
        inside = np.isin(codes, self._member).astype(np.float64)
        sq = np.einsum("nd,nd->n", self._sum, self._sum)
        out = np.empty(len(users), dtype=np.float64)
        for lo in range(0, len(users), chunk):
            u, i, inn = users[lo : lo + chunk], items[lo : lo + chunk], inside[lo : lo + chunk]
            v = self.vectors[i].astype(np.float64)
            vv = np.einsum("nd,nd->n", v, v)
            dot = np.einsum("nd,nd->n", self._sum[u], v)
            norm = np.sqrt(np.maximum(sq[u] - 2 * inn * dot + inn * vv, 0.0) * vv)
            out[lo : lo + chunk] = (dot - inn * vv) / np.maximum(norm, 1e-12)
        return out


YES_NO_TEMPLATE = (
    "A user chose these items, most recent last:\n{history}\n"
    "Candidate item:\n{item}\n"
    "Would this user plausibly choose the candidate item? Answer yes or no."
)


@dataclass
class LLMTeacher:
    """P(yes) of an LLM asked whether the user would choose the item (fenced titles).

    Args:
        backend: a `BackendSpec` or a built `LLM`.
        titles: item titles by index.
        split: its training period builds the histories (the job's leakage guard checks it).
        job: the job's name in the LLM cache.
        recent: titles of the last ``recent`` other training items in the prompt.
    """

    backend: Any
    titles: Sequence[str]
    split: Split
    job: str
    recent: int = 8
    name: str = "llm"
    cache: Any = None
    report: dict[str, Any] = field(default_factory=dict)
    calls: int = 0

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        from recfuse.llm import LLMJob, PromptRecord, PromptTemplate

        hist = train_histories(self.split)
        records = []
        for n, (u, i) in enumerate(zip(users.tolist(), items.tolist(), strict=True)):
            shown = [j for j in hist[u].tolist() if j != i][-self.recent :]
            lines = "\n".join(f"- {self.titles[j][:120]}" for j in shown)
            records.append(
                PromptRecord(
                    f"{n}:{u}:{i}",
                    {"history": lines, "item": self.titles[i][:200]},
                    tuple((u, j) for j in shown),
                )  # fmt: skip
            )
        # one job per distinct edge list: a second call with other edges never overwrites it
        digest = hashlib.sha256(np.stack([users, items]).astype(np.int64).tobytes()).hexdigest()
        name = f"{self.job}-{digest[:12]}"
        template = PromptTemplate(YES_NO_TEMPLATE, version="i2i-yes-no-v2", max_field_chars=1200)
        job = LLMJob(name, records, template, self.backend, task="score",
                     options=["yes", "no"], cache=self.cache, split=self.split, progress=False)  # fmt: skip
        self.calls += len(records)
        report = job.run()
        self.report = dataclasses.asdict(report) if dataclasses.is_dataclass(report) else {}
        probs = {}
        for row in job.cache.job_outputs(name):
            parsed = row["parsed"]
            if row["status"] == "ok" and isinstance(parsed, dict):
                probs[row["id"]] = float(parsed["probs"]["yes"])
        # a failed prompt gets the neutral 0.5: it neither promotes nor condemns the edge
        return np.array([probs.get(r.id, 0.5) for r in records], dtype=np.float64)
