"""ReaSeq, explicit half: analyst -> extractor -> critic turns item text into a knowledge record.

Three typed agent steps per item (each an `LLMJob`, cached and resumable; see `agents`):

* **analyst** (generate, <= ``analyst_tokens``): reasons briefly about the item — category path,
  key attributes, intended use, audience, complements, substitutes. Free text.
* **extractor** (generate, <= ``extractor_tokens``): turns the item text and the analyst's notes
  (both fenced: the notes are model output, untrusted like the item) into JSON; the job parses it
  (one retry) and `KnowledgeRecord` validates it strictly. Failures are counted, never kept.
* **critic** (deterministic, no LLM call — a budget decision, see docs/reaseq.md): every value
  of a *grounded* field (category, attributes) must be supported by the item's own text (content
  words); unsupported ones are removed. *Inferred* fields (use, audience, complements,
  substitutes) are world knowledge the text cannot confirm; a value is removed when it is a
  placeholder, copies the instructions, or (given a ``similarity`` function, MiniLM cosine in the
  study) is off-topic for the item. A record left empty is rejected.

The record rendered as text (`render`) is encoded like any item text (`encode_knowledge`: all
MiniLM layers into the FeatureStore under ``<dataset>-knowledge``), so every item encoder
(replacement, fusion, DFF) can read it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from recfuse import atomic
from recfuse.knowledge.agents import AgentStep, CostLog, run_step
from recfuse.llm.base import LLM, GenerationParams
from recfuse.llm.cache import LLMCache
from recfuse.llm.parsing import ParseSpec
from recfuse.llm.prompts import PromptTemplate
from recfuse.llm.sources import PromptRecord

# ----------------------------------------------------------------------------- the schema

Value = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=80)]
GROUNDED = ("category", "attributes")
INFERRED = ("use", "audience", "complements", "substitutes")
FIELDS = GROUNDED + INFERRED


class KnowledgeRecord(BaseModel):
    """The structured product knowledge of one item (the extractor's output, validated)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    category: str = Field(max_length=100)
    attributes: list[Value] = Field(default_factory=list, max_length=8)
    use: str = Field("", max_length=160)
    audience: str = Field("", max_length=120)
    complements: list[Value] = Field(default_factory=list, max_length=5)
    substitutes: list[Value] = Field(default_factory=list, max_length=5)

    def values(self) -> list[tuple[str, str]]:
        """Every (field, value) pair with a non-empty value, in field order."""
        out: list[tuple[str, str]] = []
        for name in FIELDS:
            value = getattr(self, name)
            for v in value if isinstance(value, list) else [value]:
                if v.strip():
                    out.append((name, v.strip()))
        return out

    def is_empty(self) -> bool:
        return not self.values()


def validate_record(obj: Any) -> tuple[KnowledgeRecord | None, str | None]:
    """(record, None) for a schema-valid extractor output, else (None, the first error)."""
    if not isinstance(obj, dict):
        return None, f"schema: not a JSON object ({type(obj).__name__})"
    try:
        return KnowledgeRecord.model_validate(obj), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "(root)"
        return None, f"schema: {where}: {first['msg']}"


def close_json(text: str) -> str:
    """``text`` (from its first ``{``) with what a cut-off JSON object left open closed: an open
    string, a dangling key or comma, then the open arrays and objects in order."""
    stack: list[str] = []
    in_str = esc = False
    for ch in text:
        if in_str:
            esc, in_str = (False, in_str) if esc else (ch == "\\", ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
            if not stack:
                break
    out = text + ('"' if in_str else "")
    out = re.sub(r'(,\s*"[^"]*"\s*:?\s*|[,:\s]+)$', "", out)  # dangling key / comma / colon
    return out + "".join(reversed(stack))


def _flatten(value: Any) -> list[str]:
    """A list field's values as strings: objects give their name/value, strings split on commas."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, dict):
        named = [
            value[k] for k in ("name", "value", "title", "type") if isinstance(value.get(k), str)
        ]
        return named[:1] or [v for v in value.values() if isinstance(v, str)][:1]
    if isinstance(value, list):
        return [s for v in value for s in _flatten(v)]
    return [] if value is None else [str(value)]


def read_extractor(text: str) -> tuple[dict[str, Any] | None, str]:
    """The extractor's JSON as the schema's fields: (object, how) with how ``strict`` (valid JSON
    as written), ``repaired`` (cut-off JSON closed and/or values coerced: objects in lists to
    their name, a comma string to a list, a list in a text field to its first value) or the
    reason it is unreadable (object None). Unknown keys are dropped."""
    start = text.find("{")
    if start < 0:
        return None, "no JSON object in output"
    how = "strict"
    try:
        obj = json.JSONDecoder().raw_decode(text[start:])[0]
    except ValueError:
        how = "repaired"
        try:
            obj = json.loads(close_json(text[start:]))
        except json.JSONDecodeError as exc:
            return None, f"unreadable JSON ({exc.msg})"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    out: dict[str, Any] = {}
    for name in FIELDS:
        if name not in obj:
            continue
        value = obj[name]
        listy = name in ("attributes", "complements", "substitutes")
        coerced: Any = _flatten(value) if listy else (_flatten(value) or [""])[0]
        if coerced != value:
            how = "repaired"
        out[name] = [v for v in coerced if 2 <= len(v) <= 80][:8] if listy else coerced[:160]
    return out, how


# ----------------------------------------------------------------------------- the agents

ANALYST_TEMPLATE = PromptTemplate(
    user=(
        "Think step by step about this item: its category, key attributes, intended use, "
        "audience, what goes well with it and what could replace it. Two short sentences.\n\n"
        "{item}"
    ),
    system=None,  # a 135M model follows a one-line request best (see features/captions.py)
    version="reaseq-analyst-v1",
    max_field_chars=600,
)

EXTRACTOR_TEMPLATE = PromptTemplate(
    user=(
        'Write a JSON object about this item with keys "category", "attributes", "use", '
        '"audience", "complements", "substitutes". Lists hold short phrases. Use the notes if '
        "they help. Answer with the JSON only, on one line.\n\nItem:\n{item}\n\nNotes:\n{notes}"
    ),
    system=None,
    version="reaseq-extractor-v2",
    max_field_chars=600,
)


def analyst_step(max_tokens: int = 64) -> AgentStep:
    return AgentStep(
        "analyst",
        ANALYST_TEMPLATE,
        GenerationParams(max_tokens=max_tokens),
        ParseSpec(kind="text", min_chars=8, retries=1),
    )


def extractor_step(max_tokens: int = 96, attempt: int = 0) -> AgentStep:
    """The extractor; ``attempt`` 1 is the one retry of unreadable outputs (sampled at 0.7 with
    another seed, since a greedy retry would repeat itself; its own cache keys)."""
    params = GenerationParams(max_tokens=max_tokens)
    if attempt:
        params = GenerationParams(max_tokens=max_tokens, temperature=0.7, seed=attempt)
    # the job keeps the raw text; `read_extractor` + `KnowledgeRecord` validate it
    return AgentStep(
        "extractor" if not attempt else "extractor-retry",
        EXTRACTOR_TEMPLATE,
        params,
        ParseSpec(kind="text", min_chars=2, retries=0),
    )


# ----------------------------------------------------------------------------- the critic

_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "for",
        "to",
        "in",
        "on",
        "with",
        "by",
        "from",
        "at",
        "as",
        "is",
        "are",
        "be",
        "this",
        "that",
        "it",
        "its",
        "their",
        "your",
        "who",
        "what",
        "which",
        "people",
        "users",
        "user",
        "item",
        "items",
        "product",
        "products",
        "use",
        "used",
        "using",
        "very",
        "good",
        "great",
        "best",
        "new",
        "one",
        "more",
        "most",
        "other",
        "like",
        "e",
        "g",
        "etc",
        "film",
        "movie",
    ]
)
# placeholders, and the fence labels / section names a small model copies as values
_PLACEHOLDER = re.compile(
    r"^(\.+|n/?a|none|null|unknown|not (specified|applicable)|-+|\?+|data|item|notes|json|the)$",
    re.I,
)
_INSTRUCTION_ECHO = ("short phrase", "fill in", "json", "the item", "the notes", "step by step")


def content_words(text: str) -> list[str]:
    """Lower-case content words (letters/digits, no stop words), for support checks."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return [w for w in words if w not in _STOP and len(w) > 1]


def _stem(word: str) -> str:
    return word[:5] if len(word) > 5 else word.rstrip("s")


def lexically_supported(value: str, source_stems: set[str], share: float = 0.5) -> bool:
    """Whether at least ``share`` of the value's content words occur in the source text
    (compared on 5-character stems, so plurals and -ing forms match)."""
    words = content_words(value)
    if not words:
        return False
    hits = sum(_stem(w) in source_stems for w in words)
    return hits / len(words) >= share


Similarity = Callable[[Sequence[str], Sequence[str]], np.ndarray]
"""``similarity(values, texts) -> [N]``: how on-topic each value is for its text (cosine)."""


@dataclass(frozen=True)
class Check:
    """The critic's check of one value: lexical support by the item text, kept or why not."""

    field: str
    value: str
    supported: bool
    reason: str | None  # None: kept
    novel: bool = False  # has a content word the item text lacks (adds something, if true)

    @property
    def kept(self) -> bool:
        return self.reason is None


@dataclass
class CriticVerdict:
    """The critic's decision on one record: the repaired record (None: rejected) and checks."""

    record: KnowledgeRecord | None
    checks: list[Check] = field(default_factory=list)
    record_in: KnowledgeRecord | None = None  # what the critic was given

    @property
    def removed(self) -> list[tuple[str, str, str]]:
        return [(c.field, c.value, c.reason) for c in self.checks if c.reason is not None]


def critic(
    record: KnowledgeRecord,
    item_text: str,
    similarity: Similarity | None = None,
    min_similarity: float = 0.15,
) -> CriticVerdict:
    """Check every field of ``record`` against ``item_text``; remove unsupported claims.

    Grounded fields need lexical support; inferred fields are removed as placeholders,
    instruction echoes or (with ``similarity``) off-topic values below ``min_similarity``.
    """
    stems = {_stem(w) for w in content_words(item_text)}
    pairs = record.values()
    topical = (
        similarity([v for _, v in pairs], [item_text] * len(pairs))
        if similarity is not None and pairs
        else np.ones(len(pairs))
    )
    kept: dict[str, list[str]] = {name: [] for name in FIELDS}
    checks = []
    for (name, value), sim in zip(pairs, topical, strict=True):
        grounded = lexically_supported(value, stems)
        reason = _rejection(name, value, grounded, float(sim), min_similarity)
        novel = any(_stem(w) not in stems for w in content_words(value))
        checks.append(Check(name, value, grounded, reason, novel))
        if reason is None:
            kept[name].append(value)
    repaired = KnowledgeRecord(
        category=(kept["category"] or [""])[0],
        attributes=list(dict.fromkeys(kept["attributes"])),
        use=(kept["use"] or [""])[0],
        audience=(kept["audience"] or [""])[0],
        complements=list(dict.fromkeys(kept["complements"])),
        substitutes=list(dict.fromkeys(kept["substitutes"])),
    )
    return CriticVerdict(None if repaired.is_empty() else repaired, checks, record)


def _rejection(name: str, value: str, grounded: bool, sim: float, floor: float) -> str | None:
    if _PLACEHOLDER.match(value.strip()):
        return "placeholder"
    if any(echo in value.lower() for echo in _INSTRUCTION_ECHO):
        return "copies the instructions"
    if name in GROUNDED:
        return None if grounded else "not supported by the item text"
    return None if sim >= floor else f"off-topic (similarity {sim:.2f} < {floor})"


# ----------------------------------------------------------------------------- the pipeline


@dataclass
class ItemKnowledge:
    """Everything the pipeline produced for one item (kept for quality checks and the doc)."""

    item: int
    notes: str | None
    extracted: dict[str, Any] | None  # the extractor's parsed JSON (before the strict schema)
    failure: str | None  # why there is no valid record (analyst, extractor or schema)
    verdict: CriticVerdict | None
    how: str = ""  # "strict" (valid JSON as written) or "repaired" (see `read_extractor`)
    attempts: int = 1

    @property
    def record(self) -> KnowledgeRecord | None:
        return self.verdict.record if self.verdict is not None else None


@dataclass
class KnowledgeRun:
    """The pipeline's output over a catalogue (items not yet processed are absent)."""

    dataset: str
    n_items: int
    items: dict[int, ItemKnowledge]
    costs: CostLog

    def complete(self) -> bool:
        return len(self.items) == self.n_items


def knowledge_chunk(
    dataset: str,
    texts: Sequence[str],
    items: Sequence[int],
    llm: LLM,
    llm_critic: LLM | None = None,
    cache: LLMCache | None = None,
    analyst_tokens: int = 64,
    extractor_tokens: int = 96,
    similarity: Similarity | None = None,
    costs: CostLog | None = None,
    batch_size: int = 16,
) -> dict[int, ItemKnowledge]:
    """Run analyst, extractor (one retry of unreadable or schema-invalid outputs) and critic
    over ``items`` (indices into ``texts``).

    ``llm`` answers the analyst, ``llm_critic or llm`` the extractor (pass two governed
    wrappers to log each agent under its own actor). Cached prompts are never asked again.
    """
    cache = cache or LLMCache()
    costs = costs or CostLog()
    tag = f"{int(items[0]):06d}-{len(items)}-{fingerprint_items(items)}" if len(items) else "empty"
    records = [PromptRecord(str(i), {"item": texts[i]}) for i in items]
    notes = run_step(
        analyst_step(analyst_tokens), f"reaseq-analyst-{dataset}-{tag}", records, llm, cache,
        batch_size=batch_size, costs=costs,
    )  # fmt: skip
    out: dict[int, ItemKnowledge] = {}
    todo = []
    for r in records:
        if notes.parsed[r.id] is None:
            failure = f"analyst: {notes.reasons[r.id]}"
            out[int(r.id)] = ItemKnowledge(int(r.id), None, None, failure, None)
        else:
            todo.append(PromptRecord(r.id, {"item": r.fields["item"], "notes": notes.parsed[r.id]}))
    for attempt in (0, 1):
        if not todo:
            break
        answers = run_step(
            extractor_step(extractor_tokens, attempt), f"reaseq-extractor{attempt or ''}-"
            f"{dataset}-{tag}", todo, llm_critic or llm, cache, batch_size=batch_size, costs=costs,
        )  # fmt: skip
        retry = []
        for r in todo:
            known = _read_one(
                int(r.id), r.fields["notes"], answers.parsed[r.id], answers.reasons[r.id]
            )
            if known.verdict is None and attempt == 0:
                retry.append(r)
                continue
            if known.verdict is not None and known.verdict.record_in is not None:
                known.verdict = critic(known.verdict.record_in, texts[int(r.id)], similarity)
            known.attempts = attempt + 1
            out[known.item] = known
        todo = retry
    return out


def _started(
    dataset: str, texts: Sequence[str], items: list[int], llm: LLM, cache: LLMCache, tokens: int
) -> bool:
    """Whether a previous run answered this chunk's analyst prompts (so it costs little now)."""
    from recfuse.llm.job import LLMJob

    step = analyst_step(tokens)
    records = [PromptRecord(str(i), {"item": texts[i]}) for i in items]
    job = LLMJob("probe", records, step.template, llm, step.params, parse=step.parse, cache=cache)
    keys = [item.key for _, item in job.plan()]
    return len(cache.done_keys(keys)) == len(keys)


def fingerprint_items(items: Sequence[int]) -> str:
    """A short hash of a chunk's item list (its job names differ from another order's)."""
    import hashlib

    return hashlib.sha256(",".join(map(str, items)).encode()).hexdigest()[:8]


def _read_one(item: int, notes: str, text: Any, reason: str | None) -> ItemKnowledge:
    """The extractor's answer for one item as `ItemKnowledge` (verdict pending: the critic runs
    after), or with the reason it failed."""
    if text is None:
        return ItemKnowledge(item, notes, None, f"extractor: {reason}", None)
    obj, how = read_extractor(str(text))
    if obj is None:
        return ItemKnowledge(item, notes, None, f"extractor: {how}", None)
    valid, error = validate_record(obj)
    if valid is None:
        return ItemKnowledge(item, notes, obj, error, None, how=how)
    return ItemKnowledge(item, notes, obj, None, CriticVerdict(None, [], valid), how=how)


def extract_knowledge(
    dataset: str,
    texts: Sequence[str],
    llm: LLM,
    llm_critic: LLM | None = None,
    cache: LLMCache | None = None,
    chunk_items: int = 128,
    max_chunks: int | None = None,
    limit: int | None = None,
    cost_path: Path | None = None,
    order: Sequence[int] | None = None,
    **kwargs: Any,
) -> KnowledgeRun:
    """The pipeline over the first ``limit`` items of ``order`` (default: all, in index order),
    chunk by chunk (a fixed random order makes a partial run an unbiased sample).

    A chunk whose answers are all cached costs no model call. ``max_chunks`` bounds how many
    chunks with missing answers this call computes (a heavy job's unit); the chunks after that
    are left out of the returned run, and a rerun continues there (answered chunks are free).
    """
    cache = cache or LLMCache()
    costs = CostLog(cost_path)
    n = len(texts) if limit is None else min(limit, len(texts))
    ranked = list(range(len(texts))) if order is None else [int(i) for i in order]
    found: dict[int, ItemKnowledge] = {}
    computed = 0
    for start in range(0, n, chunk_items):
        items = ranked[start : min(start + chunk_items, n)]
        if (
            max_chunks is not None
            and computed >= max_chunks
            and not _started(dataset, texts, items, llm, cache, kwargs.get("analyst_tokens", 64))
        ):
            break  # chunks run in order: the ones after were never computed
        before = costs.new_calls()
        found.update(
            knowledge_chunk(dataset, texts, items, llm, llm_critic, cache, costs=costs, **kwargs)
        )
        computed += int(costs.new_calls() > before)
    return KnowledgeRun(dataset, len(texts), found, costs)


# ----------------------------------------------------------------------------- rendering


LABELS = {"category": "", "attributes": "Attributes: ", "use": "Use: ", "audience": "For: ",
          "complements": "Goes with: ", "substitutes": "Instead of: "}  # fmt: skip


def render(record: KnowledgeRecord | None, title: str) -> str:
    """The record as one text for the encoder: ``title: category. Attributes: a, b. Use: ...``.

    Items without a valid record render as their title alone (coverage says how many).
    """
    if record is None:
        return title
    parts = [title + ":"]
    for name, label in LABELS.items():
        value = getattr(record, name)
        if value:
            parts.append(f"{label}{', '.join(value) if isinstance(value, list) else value}.")
    return " ".join(parts)


def knowledge_texts(run: KnowledgeRun, titles: Sequence[str]) -> list[str]:
    """One rendered text per catalogue item (title only where there is no record)."""
    return [
        render(run.items[i].record if i in run.items else None, str(titles[i]))
        for i in range(run.n_items)
    ]


def encode_knowledge(
    dataset: str, texts: Sequence[str], model: str = "minilm", progress: bool = False
) -> Any:
    """All layers of ``model`` over the rendered records, in the FeatureStore under
    ``<dataset>-knowledge`` (content-addressed by the texts: a new record set is a new set)."""
    from recfuse.features.extract import extract_features
    from recfuse.features.store import texts_hash

    return extract_features(
        list(texts),
        model,
        f"{dataset}-knowledge",
        template=f"knowledge:{texts_hash(texts)}",
        progress=progress,
    )


# ----------------------------------------------------------------------------- quality


def quality(run: KnowledgeRun) -> dict[str, Any]:
    """Schema-valid rate, critic rejection rate, automatic faithfulness and coverage.

    * ``schema_valid``: processed items whose extractor output (after `read_extractor`'s
      repairs) passed the schema; ``strict_json``: of those, valid JSON as written;
      ``retried``: items that needed the extractor's one retry;
    * ``critic_removed``: share of extracted values the critic removed; ``rejected``: share of
      valid records it rejected as a whole;
    * ``faithfulness``: share of extracted values (before the critic) whose content words the
      item text supports (``_grounded``: category and attributes only; ``_after``: the values
      the critic kept — inferred fields are world knowledge and lower it by design);
    * ``coverage``: catalogue items with a kept record; ``field_coverage``: per field, share of
      kept records that fill it;
    * ``novel_after``: kept values with a content word the item text lacks (what a record adds
      beyond copying the text); ``records_adding``: kept records with at least one such value.
    """
    done = list(run.items.values())
    n = max(len(done), 1)
    verdicts = [k.verdict for k in done if k.verdict is not None]
    checks = [c for v in verdicts for c in v.checks]
    grounded = [c for c in checks if c.field in GROUNDED]
    kept_checks = [c for c in checks if c.kept]
    kept = [k.record for k in done if k.record is not None]
    failures: dict[str, int] = {}
    for k in done:
        if k.failure:
            kind = k.failure.split(":")[0]
            failures[kind] = failures.get(kind, 0) + 1

    def share(rows: list[Check]) -> float:
        return sum(c.supported for c in rows) / max(len(rows), 1)

    return {
        "processed": len(done),
        "catalogue": run.n_items,
        "schema_valid": len(verdicts) / n,
        "strict_json": sum(k.verdict is not None and k.how == "strict" for k in done) / n,
        "retried": sum(k.attempts > 1 for k in done) / n,
        "failures": failures,
        "values_checked": len(checks),
        "critic_removed": (len(checks) - len(kept_checks)) / max(len(checks), 1),
        "rejected": sum(v.record is None for v in verdicts) / max(len(verdicts), 1),
        "faithfulness": share(checks),
        "faithfulness_grounded": share(grounded),
        "faithfulness_after": share(kept_checks),
        "coverage": len(kept) / max(run.n_items, 1),
        "coverage_processed": len(kept) / n,
        "field_coverage": {
            f: sum(bool(getattr(r, f)) for r in kept) / max(len(kept), 1) for f in FIELDS
        },
        "values_per_record": sum(len(r.values()) for r in kept) / max(len(kept), 1),
        "novel_after": sum(c.novel for c in kept_checks) / max(len(kept_checks), 1),
        "records_adding": sum(
            any(c.kept and c.novel for c in v.checks) for v in verdicts if v.record is not None
        )
        / max(len(kept), 1),
    }


def save_run(run: KnowledgeRun, path: Path, texts: Sequence[str]) -> None:
    """Every item's notes, extracted JSON, failure and critic verdict as JSON (for the doc)."""
    rows = []
    for i, k in sorted(run.items.items()):
        v = k.verdict
        rows.append(
            {
                "item": i,
                "text": texts[i],
                "notes": k.notes,
                "extracted": k.extracted,
                "failure": k.failure,
                "kept": v.record.model_dump() if v is not None and v.record else None,
                "removed": v.removed if v is not None else [],
            }
        )
    atomic.write_text(path, json.dumps({"dataset": run.dataset, "items": rows}, indent=1))


__all__ = [
    "ANALYST_TEMPLATE",
    "EXTRACTOR_TEMPLATE",
    "Check",
    "CriticVerdict",
    "ItemKnowledge",
    "KnowledgeRecord",
    "KnowledgeRun",
    "analyst_step",
    "critic",
    "encode_knowledge",
    "extract_knowledge",
    "extractor_step",
    "knowledge_chunk",
    "knowledge_texts",
    "quality",
    "render",
    "save_run",
    "validate_record",
]
