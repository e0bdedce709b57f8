"""Offline teachers: p(i > j) for each training-period pair, from a frozen model.

* `LLMTeacher`: an LLM is shown the fenced titles of the user's prefix history and two
  candidates and asked which the user prefers ("A" or "B"). The log-probabilities of the two
  answers give P(A); each pair is asked in both presentation orders and the two log-odds of
  p(pos > neg) are averaged, which cancels a constant position bias (its size is reported).
  Every call goes through `LLMJob` (SQLite cache, resumable, leakage-checked).
* `MiniLMTeacher`: cosine similarity between the mean MiniLM vector of the prefix history and
  each candidate; p = sigmoid(scale · (sim_i − sim_j)). Symmetric, so order plays no part.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from recfuse.errors import ConfigError, RecfuseError
from recfuse.guidance.pairs import PairSet
from recfuse.llm.backend_spec import BackendSpec, job_threads
from recfuse.llm.base import LLM
from recfuse.llm.cache import LLMCache
from recfuse.llm.job import LLMJob
from recfuse.llm.prompts import PromptTemplate
from recfuse.llm.sources import PromptRecord

PAIRWISE_TEMPLATE = PromptTemplate(
    system="You predict which of two items a user will choose next, from the user's history.",
    user=(
        "Items the user interacted with, oldest first:\n{history}\n\n"
        "Candidate A:\n{a}\n\nCandidate B:\n{b}\n\n"
        "Which candidate will the user prefer next? Answer with A or B."
    ),
    version="guidance-pairwise-v1",
    max_field_chars=1500,
)
OPTIONS = ("A", "B")


@dataclass
class TeacherOutput:
    """``p``: float64 [n_pairs], p(pos > neg). ``p_orders``: [n_pairs, 2] (pos shown first,
    pos shown second) or None for an order-free teacher. ``cost``: pairs, calls, seconds..."""

    name: str
    p: np.ndarray
    p_orders: np.ndarray | None = None
    cost: dict[str, Any] = field(default_factory=dict)

    def position_bias(self) -> float | None:
        """Mean P(answer A) − 0.5 over both orders (0 = no preference for the first slot)."""
        if self.p_orders is None:
            return None
        p_a = np.concatenate([self.p_orders[:, 0], 1.0 - self.p_orders[:, 1]])
        return float(p_a.mean() - 0.5)


def combine_orders(probs: np.ndarray) -> np.ndarray:
    """p(pos > neg) from both orders [n, 2]: the mean of the two log-odds, so a constant
    log-odds preference for one slot cancels exactly; one missing order uses the other;
    none gives 0.5 (no preference)."""
    q = np.clip(probs, 1e-6, 1 - 1e-6)
    with warnings.catch_warnings():  # an all-missing row is expected: it becomes 0.5
        warnings.simplefilter("ignore", RuntimeWarning)
        logit = np.nanmean(np.log(q / (1 - q)), axis=1)
    return np.where(np.isnan(logit), 0.5, 1.0 / (1.0 + np.exp(-np.nan_to_num(logit))))


class Teacher(Protocol):
    name: str

    def identity(self) -> str:
        """A string that changes when the teacher's answers could change."""
        ...

    def preferences(
        self, pairs: PairSet, texts: Sequence[str], dataset: str = "guidance"
    ) -> TeacherOutput:
        """p(pos > neg) for every pair of ``pairs`` (item ``texts`` by item index)."""
        ...


def _history_titles(prefix: np.ndarray, texts: Sequence[str], max_items: int) -> list[str]:
    return [texts[i] for i in prefix[-max_items:]]


class LLMTeacher:
    """Pairwise preferences from an LLM backend (a `BackendSpec` or a built `LLM`)."""

    def __init__(
        self,
        backend: BackendSpec | LLM,
        history_items: int = 10,
        cache: LLMCache | str | None = None,
        job_prefix: str = "guidance",
        progress: bool = False,
    ) -> None:
        self.backend, self.history_items = backend, history_items
        self.cache, self.job_prefix, self.progress = cache, job_prefix, progress
        if isinstance(backend, BackendSpec):
            self.name = f"llm:{backend.kind}:{backend.model}"
        else:
            self.name = f"llm:{backend.backend}:{backend.model_id}"

    def identity(self) -> str:
        if isinstance(self.backend, BackendSpec):
            backend, model = self.backend.identity()
        else:
            backend, model = self.backend.backend, self.backend.model_id
        return f"{backend}:{model}:{PAIRWISE_TEMPLATE.key}:h{self.history_items}"

    def records(self, pairs: PairSet, texts: Sequence[str]) -> list[PromptRecord]:
        """Two records per pair: pos as A, then pos as B; interactions = the prefix shown."""
        prefixes = pairs.prefixes()
        out = []
        for row, (u, pos, neg) in enumerate(
            pairs.pairs[["user", "pos", "neg"]].itertuples(index=False)
        ):
            shown = prefixes[u][-self.history_items :]
            history = "\n".join(f"- {t}" for t in _history_titles(shown, texts, len(shown)))
            inter = tuple((int(u), int(i)) for i in shown)
            for order, (a, b) in enumerate(((pos, neg), (neg, pos))):
                fields = {"history": history, "a": texts[a], "b": texts[b]}
                out.append(PromptRecord(f"{row}:{order}", fields, inter))
        return out

    def preferences(
        self, pairs: PairSet, texts: Sequence[str], dataset: str = "guidance"
    ) -> TeacherOutput:
        records = self.records(pairs, texts)
        digest = hashlib.sha256("|".join(r.id + str(r.fields) for r in records).encode())
        job = LLMJob(
            f"{self.job_prefix}-{digest.hexdigest()[:12]}",
            records,
            PAIRWISE_TEMPLATE,
            backend=self.backend,
            task="score",
            options=OPTIONS,
            cache=self.cache,
            split=pairs.holdout,  # prefixes only: a held-out, valid or test item raises
            progress=self.progress,
        )
        report = job.run()
        probs = np.full((len(pairs.pairs), 2), np.nan)
        for out in job.cache.job_outputs(job.name):
            if out["status"] != "ok":
                continue
            row, order = (int(v) for v in out["id"].split(":"))
            p_a = float(out["parsed"]["probs"]["A"])
            probs[row, order] = p_a if order == 0 else 1.0 - p_a
        failed = int(np.isnan(probs).any(axis=1).sum())
        if failed == len(probs):
            raise RecfuseError(f"teacher {self.name}: no pair was scored")
        p = combine_orders(probs)
        cost = {
            "pairs": len(pairs.pairs),
            "calls": report.total,
            "new_calls": report.completed + report.failed,
            "cache_hits": report.already_done,
            "cache_hit_rate": report.already_done / max(report.total, 1),
            "llm_seconds": round(report.model_seconds, 2),
            "wall_seconds": round(report.wall_seconds, 2),
            "failed_pairs": failed,
        }
        return TeacherOutput(self.name, p, probs, cost)


class MiniLMTeacher:
    """Similarity teacher over frozen MiniLM item vectors (last layer, mean pooling)."""

    def __init__(self, history_items: int = 10, scale: float = 20.0, model: str = "minilm"):
        self.history_items, self.scale, self.model = history_items, scale, model
        self.name = f"{model}-similarity"

    def identity(self) -> str:
        return f"{self.model}:last-mean:h{self.history_items}:s{self.scale}"

    def item_vectors(self, texts: Sequence[str], dataset: str) -> np.ndarray:
        """[n_items, d] unit vectors of the item texts (extracted once, then from the store)."""
        from recfuse.features.extract import extract_features

        fset = extract_features(list(texts), self.model, dataset=dataset, progress=False)
        vecs = fset.load(fset.n_layers - 1, "mean").astype(np.float64)
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    def preferences(
        self, pairs: PairSet, texts: Sequence[str], dataset: str = "guidance"
    ) -> TeacherOutput:
        started = time.perf_counter()
        vecs = self.item_vectors(texts, dataset)
        prefixes = pairs.prefixes()
        frame = pairs.pairs
        users = np.unique(frame["user"].to_numpy())
        profile = np.zeros((pairs.holdout.n_users, vecs.shape[1]))
        for u in users:
            shown = prefixes[u][-self.history_items :]
            if not len(shown):
                raise ConfigError(f"user {u}: empty prefix history")
            m = vecs[shown].mean(axis=0)
            profile[u] = m / max(float(np.linalg.norm(m)), 1e-12)
        u, i, j = (frame[c].to_numpy() for c in ("user", "pos", "neg"))
        diff = (profile[u] * vecs[i]).sum(1) - (profile[u] * vecs[j]).sum(1)
        p = 1.0 / (1.0 + np.exp(-self.scale * diff))
        seconds = time.perf_counter() - started
        cost = {"pairs": len(frame), "calls": 0, "llm_seconds": 0.0, "seconds": round(seconds, 2)}
        return TeacherOutput(self.name, p, None, cost)


def teacher_from_name(name: str, history_items: int = 10, cache: str | None = None) -> Any:
    """``minilm`` | ``smollm2`` (CTranslate2 float32 where installed, else transformers) |
    ``smollm2:int8`` | ``transformers`` | ``llamacpp:<gguf>`` | ``http://host:port/v1#model``
    (any OpenAI-compatible endpoint)."""
    if name == "minilm":
        return MiniLMTeacher(history_items)
    threads = job_threads()
    if name in ("smollm2", "smollm2:int8", "transformers"):
        # float32 by default: int8 made float32's A/B choice on only 24% of close pairs
        # (docs/llm.md), and a teacher's value is in exactly those close preferences.
        spec = BackendSpec(
            kind="transformers" if name == "transformers" else "auto",
            model="smollm2",
            threads=threads,
            compute_type="int8" if name.endswith(":int8") else "float32",
        )
    elif name.startswith("llamacpp:"):
        spec = BackendSpec(kind="llamacpp", model=name.split(":", 1)[1], threads=1)
    elif name.startswith(("http://", "https://")):
        base, _, model = name.partition("#")
        spec = BackendSpec(kind="http", base_url=base, model=model or "default")
    else:
        raise ConfigError(
            f"--teacher {name!r}: use minilm, smollm2, llamacpp:<path> or http://host:port/v1#model"
        )
    return LLMTeacher(spec, history_items, cache, progress=True)
