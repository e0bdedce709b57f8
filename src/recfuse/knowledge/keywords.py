"""Keyword summaries of items (MMSRARec step 1): several candidate keyword sets per item.

SmolLM2 reads each item's text (fenced, as untrusted data) under a few prompt variants that
differ in wording, requested length, token budget and temperature, and proposes one keyword set
per variant. Every prompt is an `LLMJob` over the shared SQLite cache: a rerun asks the model
nothing it already answered, and a killed run resumes. The model's raw answer is validated into
a `KeywordSet` (pydantic): at least one keyword, each short, duplicates and echoes of the prompt
removed; an answer that does not validate is kept as a failed candidate (reward ``-inf``).

Only item text goes into these prompts (no interactions), so no valid/test information can.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator

from recfuse.llm.backend_spec import BackendSpec
from recfuse.llm.base import LLM, GenerationParams
from recfuse.llm.cache import LLMCache
from recfuse.llm.job import JobReport, LLMJob
from recfuse.llm.parsing import ParseSpec
from recfuse.llm.prompts import PromptTemplate
from recfuse.llm.sources import PromptRecord

MAX_KEYWORDS = 12
MAX_KEYWORD_CHARS = 40


@dataclass(frozen=True)
class KeywordVariant:
    """One way of asking for keywords: the instruction, the token budget and the sampling."""

    name: str
    instruction: str
    max_tokens: int = 20
    temperature: float = 0.0

    def template(self) -> PromptTemplate:
        # a one-line request without a system message works best for a 135M model (see
        # features/captions.py); the fence keeps the item text from acting as instructions
        return PromptTemplate(
            user=f"{self.instruction}\n\n{{item}}",
            system=None,
            version=f"keywords-{self.name}-v1",
            max_field_chars=600,
        )

    def params(self, seed: int = 0) -> GenerationParams:
        return GenerationParams(
            max_tokens=self.max_tokens, temperature=self.temperature, stop=("\n\n",), seed=seed
        )


VARIANTS: tuple[KeywordVariant, ...] = (
    KeywordVariant("short", "List 3 keywords for this item, separated by commas.", 12, 0.0),
    KeywordVariant(
        "medium",
        "Describe this item with 3 to 5 short keywords (genre, theme, mood), separated by "
        "commas, for example: war, drama, 1940s, heroism.",
        16,
        0.0,
    ),
    KeywordVariant(
        "topic",
        "Write 4 to 6 comma-separated keywords for this item: its type, topic and use.",
        16,
        0.7,
    ),
    KeywordVariant(
        "distinct",
        "Give comma-separated keywords that tell this item apart from similar items.",
        24,
        0.7,
    ),
)


class KeywordSet(BaseModel):
    """A validated keyword summary: 1..12 distinct keywords of 1..40 characters each."""

    keywords: list[str] = Field(min_length=1, max_length=MAX_KEYWORDS)

    @field_validator("keywords")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        for kw in value:
            if not 0 < len(kw) <= MAX_KEYWORD_CHARS:
                raise ValueError(f"keyword {kw[:50]!r} is not 1..{MAX_KEYWORD_CHARS} characters")
        return value

    def text(self) -> str:
        return ", ".join(self.keywords)

    @property
    def n_words(self) -> int:
        return sum(len(kw.split()) for kw in self.keywords)


_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")  # "1. x", not "1996. Comedy"
_PREFIX = re.compile(r"^\s*(?:keywords?|tags?|data)\s*:\s*", re.I)  # "Data:" echoes the fence


def parse_keywords(raw: str) -> KeywordSet | None:
    """The `KeywordSet` in a raw answer (comma, semicolon or line separated; bullets, a
    ``Keywords:`` prefix, quotes and a trailing period removed), or None when none validates."""
    text = _PREFIX.sub("", raw.strip())
    parts = re.split(r"[,;\n]", text)
    seen: dict[str, str] = {}
    for part in parts:
        kw = _PREFIX.sub("", _BULLET.sub("", part)).strip().strip("\"'*.").strip()
        kw = re.sub(r"\s+", " ", kw)
        if kw and "<<<" not in kw and ">>>" not in kw and kw.lower() not in seen:
            seen[kw.lower()] = kw
    try:
        return KeywordSet(keywords=list(seen.values())[:MAX_KEYWORDS])
    except ValidationError:
        return None


# The runtime fails a free-text answer that mostly copies its prompt. Keywords copied from the
# item text are legitimate extractive keywords (ml-100k's text is a title, a year and genres), so
# such an answer is kept and validated like any other; the reward's length and information terms
# judge it. A copied data fence or a refusal stays a failure.
EXTRACTIVE_ECHO = "echo: output repeats the prompt"


@dataclass(frozen=True)
class Candidate:
    """One proposed summary of one item (``keywords`` None: the answer did not validate).

    ``status``: ``ok``, ``echo`` (kept: mostly copied from the prompt) or ``failed``.
    """

    item: int
    variant: str
    raw: str
    keywords: KeywordSet | None
    status: str = "ok"


def keyword_job(
    name: str,
    texts: Sequence[str],
    items: Sequence[int] | np.ndarray,
    variant: KeywordVariant,
    backend: BackendSpec | LLM,
    cache: LLMCache,
    seed: int = 0,
) -> LLMJob:
    """The job asking ``variant`` for every item of ``items`` (record id = item index)."""
    records = [PromptRecord(str(int(i)), {"item": texts[int(i)]}) for i in items]
    # no retries: a greedy variant repeats its answer, and a failed candidate is a result
    # (reward -inf) that best-of-n simply skips
    return LLMJob(
        name, records, variant.template(), backend, variant.params(seed),
        parse=ParseSpec(kind="text", retries=0), cache=cache, progress=False,
    )  # fmt: skip


def generate_candidates(
    tag: str,
    texts: Sequence[str],
    items: Sequence[int] | np.ndarray,
    backend: BackendSpec | LLM,
    cache: LLMCache | None = None,
    variants: Sequence[KeywordVariant] = VARIANTS,
    seed: int = 0,
) -> tuple[list[Candidate], list[JobReport]]:
    """Every variant's keyword candidate for every item, and the job reports (cost accounting).

    ``tag`` names the jobs (dataset and round); the answers are cached by content, so the same
    prompt for the same model and parameters is never asked twice.
    """
    cache = cache or LLMCache()
    out: list[Candidate] = []
    reports: list[JobReport] = []
    for variant in variants:
        job = keyword_job(f"{tag}-{variant.name}", texts, items, variant, backend, cache, seed)
        report = job.run()
        reports.append(report)
        if report.completed + report.failed:
            backend = job.llm  # the model was loaded: reuse it for the next variants
        for record_id, work in job.plan():
            row = cache.get(work.key)
            raw = row.raw_text if row is not None and row.raw_text is not None else ""
            status = "failed" if row is None else row.status
            if (
                status == "failed"
                and row is not None
                and (row.reason or "").startswith(EXTRACTIVE_ECHO)
            ):
                status = "echo"
            keywords = parse_keywords(raw) if status != "failed" else None
            out.append(Candidate(int(record_id), variant.name, raw, keywords, status))
    return out, reports
