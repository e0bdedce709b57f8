"""ReaSeq, latent half: beyond-log interests of each user from the training period only.

The paper infers beyond-log behaviours by latent reasoning with a diffusion LLM. **No diffusion
LLM is available here**, so `SampledLatent` does the latent step with what is: it samples ``k``
short continuations ("one other kind of item this user may like") from the small LM, each from
the user's last training-period items (`history_for_prompt`; every (user, item) pair is checked
against the split's training period before a call), and pools the samples' hidden states —
the frozen encoder's last-layer mean of each sample, averaged over the samples and normalised —
into one interest vector per user. Any other reasoner (a diffusion model, a served LLM) fits
behind the `LatentReasoner` protocol: ``infer(split, titles) -> InterestSet``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from recfuse.knowledge.agents import AgentStep, CostLog, run_step
from recfuse.llm.base import LLM, GenerationParams
from recfuse.llm.cache import LLMCache
from recfuse.llm.leakage import history_for_prompt
from recfuse.llm.parsing import ParseSpec
from recfuse.llm.prompts import PromptTemplate
from recfuse.llm.sources import PromptRecord
from recfuse.split import Split

INTEREST_TEMPLATE = PromptTemplate(
    user=(
        "A user liked these {noun}s, most recent last:\n{history}\n\n"
        "Which kind of {noun} should we recommend to this user next? Answer in a few words."
    ),
    system=None,
    version="reaseq-interest-v2",
    max_field_chars=900,
    trusted_fields=("noun",),  # a word the study chooses ("movie"), never item or user text
)


@dataclass
class InterestSet:
    """Beyond-log interests: the sampled texts and the pooled vectors.

    Attributes:
        texts: per user, the successful samples (empty: none, or the user was not processed).
        vectors: float32 [n_users, d], L2-normalised; zero rows for users without samples.
    """

    texts: list[list[str]]
    vectors: np.ndarray
    costs: CostLog = field(default_factory=CostLog)

    @property
    def coverage(self) -> float:
        return float(np.mean([bool(t) for t in self.texts])) if self.texts else 0.0


class LatentReasoner(Protocol):
    """Infers beyond-log interests from training-period histories (a diffusion LLM would go here)."""

    def infer(self, split: Split, titles: Sequence[str]) -> InterestSet: ...


def interest_records(
    split: Split,
    titles: Sequence[str],
    history_items: int,
    users: Sequence[int] | None = None,
    noun: str = "item",
) -> list[PromptRecord]:
    """One prompt record per user with a training history: their last ``history_items`` titles,
    with the (user, item) pairs they came from (so `LLMJob` can check the training period)."""
    records = []
    for user in users if users is not None else range(split.n_users):
        items = history_for_prompt(split, int(user), "train", history_items)
        if len(items) == 0:
            continue
        history = "\n".join(f"- {titles[i]}" for i in items)
        pairs = tuple((int(user), int(i)) for i in items)
        records.append(PromptRecord(str(user), {"history": history, "noun": noun}, pairs))
    return records


def pool_samples(samples: list[list[str]], encode: Any, dim: int | None = None) -> np.ndarray:
    """Mean of each user's sample vectors, L2-normalised: [n_users, d] (zero rows: no sample).

    ``encode(texts) -> [N, d]`` is the frozen encoder (`recfuse.features.embed.embed`)."""
    flat = [t for row in samples for t in row]
    if not flat:
        return np.zeros((len(samples), dim or 1), dtype=np.float32)
    vectors = np.asarray(encode(flat), dtype=np.float32)
    out = np.zeros((len(samples), vectors.shape[1]), dtype=np.float32)
    owner = np.repeat(np.arange(len(samples)), [len(row) for row in samples])
    np.add.at(out, owner, vectors)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


@dataclass
class SampledLatent:
    """The latent step without a diffusion LLM: ``k`` sampled continuations, pooled.

    Each sample is its own `LLMJob` (its own decoding seed, so samples differ and each is
    cached): ``k`` jobs × users prompts of at most ``max_tokens`` new tokens.
    """

    llm: LLM
    encode: Any  # texts -> [N, d]
    name: str = "reaseq-interest"  # job name prefix (add the dataset)
    k: int = 3
    max_tokens: int = 24
    temperature: float = 0.7  # 0.9 gave mostly off-topic text from the 135M model
    noun: str = "item"  # what the catalogue holds ("movie", "product"): part of the prompt
    history_items: int = 10
    max_users: int | None = None
    cache: LLMCache | None = None
    costs: CostLog = field(default_factory=CostLog)
    batch_size: int = 16

    def step(self, sample: int) -> AgentStep:
        params = GenerationParams(
            max_tokens=self.max_tokens, temperature=self.temperature, seed=1000 + sample
        )
        return AgentStep(
            "interest", INTEREST_TEMPLATE, params, ParseSpec(kind="text", min_chars=3, retries=1)
        )

    def job_name(self, users: int, sample: int) -> str:
        """``<name>-u<users>-t<max_tokens>-h<history>-<sample>``: runs with other budgets own
        other job rows (a smoke run does not replace the item list of a real one)."""
        return f"{self.name}-u{users}-t{self.max_tokens}-h{self.history_items}-{sample}"

    def infer(self, split: Split, titles: Sequence[str]) -> InterestSet:
        """Interests of the first ``max_users`` users (all by default); others get none."""
        n = split.n_users if self.max_users is None else min(self.max_users, split.n_users)
        records = interest_records(split, titles, self.history_items, list(range(n)), self.noun)
        cache = self.cache or LLMCache()
        samples: list[list[str]] = [[] for _ in range(split.n_users)]
        for s in range(self.k):
            out = run_step(
                self.step(s), self.job_name(n, s), records, self.llm, cache, split=split,
                batch_size=self.batch_size, costs=self.costs,
            )  # fmt: skip
            for record in records:
                text = out.parsed.get(record.id)
                if text:
                    samples[int(record.id)].append(_first_line(str(text)))
        return InterestSet(samples, pool_samples(samples, self.encode), self.costs)


def _first_line(text: str) -> str:
    """The answer's first non-empty line, without list marks (a short phrase is asked for)."""
    for line in text.strip().splitlines():
        line = line.strip().lstrip("-*0123456789. ").strip()
        if line:
            return line[:160]
    return text.strip()[:160]


__all__ = [
    "INTEREST_TEMPLATE",
    "InterestSet",
    "LatentReasoner",
    "SampledLatent",
    "interest_records",
    "pool_samples",
]
