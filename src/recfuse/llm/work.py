"""One unit of LLM work: a batch of prompts in, parsed results (or counted failures) out.

`process_batch` runs wherever the backend is — in the driver or in a Ray actor — and never
touches the cache. Parse failures are retried a bounded number of times (sampling at
`RETRY_TEMPERATURE` with a new seed, since a greedy retry would repeat itself); what still
fails becomes a failed result with its reason. Backend errors are not swallowed: they stop the
job, and a rerun resumes it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from recfuse.llm.base import (
    LLM,
    GenerationParams,
    Prompt,
    RawPrompt,
    as_chat,
    prompt_from_identity,
    score_many,
)
from recfuse.llm.parsing import ParseFailure, ParseSpec, check_echo

RETRY_TEMPERATURE = 0.7


@dataclass(frozen=True)
class WorkItem:
    """A prompt to answer and the cache key its answer is stored under."""

    key: str
    prompt: dict[str, Any]  # `prompt_identity` form: {"chat": [...]} or {"raw": "..."}


@dataclass(frozen=True)
class TaskSpec:
    """What to do with each prompt: ``generate`` (then parse) or ``score`` the ``options``."""

    task: str
    params: GenerationParams
    parse: ParseSpec
    options: tuple[str, ...] = ()

    def key_params(self) -> dict[str, Any]:
        """Everything besides backend, model, template and prompt that shapes the answer."""
        out: dict[str, Any] = {"task": self.task, "parse": self.parse.model_dump()}
        if self.task == "score":
            out["options"] = list(self.options)
        else:
            out.update(self.params.as_dict())
        return out


@dataclass(frozen=True)
class ItemResult:
    """The answer to one `WorkItem`, with its accounting over all attempts."""

    key: str
    status: str  # "ok" | "failed"
    raw_text: str | None
    parsed: Any
    reason: str | None
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float


def prompt_text(prompt: Prompt) -> str:
    """All the text a prompt shows the model (every message's content), for echo checks."""
    if isinstance(prompt, RawPrompt):
        return prompt.text
    return "\n".join(str(m.get("content", "")) for m in as_chat(prompt) or [])


def process_batch(llm: LLM, items: list[WorkItem], task: TaskSpec) -> list[ItemResult]:
    """Answer every item of the batch; one result per item, in order."""
    if task.task == "score":
        return _score_batch(llm, items, task.options)
    return _generate_batch(llm, items, task)


def _generate_batch(llm: LLM, items: list[WorkItem], task: TaskSpec) -> list[ItemResult]:
    parser = task.parse.build()
    prompts = [prompt_from_identity(item.prompt) for item in items]
    totals = [[0, 0, 0.0] for _ in items]  # prompt tokens, completion tokens, seconds
    results: list[ItemResult | None] = [None] * len(items)
    pending = list(range(len(items)))
    attempt = 0
    while pending:
        params = task.params
        if attempt:
            params = dataclasses.replace(
                params,
                temperature=max(params.temperature, RETRY_TEMPERATURE),
                seed=params.seed + attempt,
            )
        gens = llm.generate([prompts[i] for i in pending], params)
        retry = []
        for i, gen in zip(pending, gens, strict=True):
            totals[i][0] += gen.prompt_tokens
            totals[i][1] += gen.completion_tokens
            totals[i][2] += gen.seconds
            try:
                if task.parse.kind == "text":  # free text is where a prompt echo slips through
                    check_echo(gen.text, prompt_text(prompts[i]))
                value, reason = parser.parse(gen.text), None
            except ParseFailure as failure:
                value, reason = None, failure.reason
            except Exception as exc:  # a parser bug must not kill a long job; count it
                value, reason = None, f"parser error: {type(exc).__name__}: {exc}"
            if reason is not None and attempt < task.parse.retries:
                retry.append(i)
                continue
            ptok, ctok, secs = totals[i]
            results[i] = ItemResult(
                items[i].key,
                "ok" if reason is None else "failed",
                gen.text,
                value,
                reason,
                attempt + 1,
                int(ptok),
                int(ctok),
                float(secs),
            )
        pending = retry
        attempt += 1
    return [r for r in results if r is not None]


def _score_batch(llm: LLM, items: list[WorkItem], options: tuple[str, ...]) -> list[ItemResult]:
    """Score every item in one `score_many` call (one batched pass on backends that batch)."""
    started = time.perf_counter()
    prompts = [prompt_from_identity(item.prompt) for item in items]
    scores = score_many(llm, [(prompt, options) for prompt in prompts])
    seconds = (time.perf_counter() - started) / max(len(items), 1)
    return [_score_result(item, options, s, seconds) for item, s in zip(items, scores, strict=True)]


def _score_result(
    item: WorkItem, options: tuple[str, ...], logprobs: np.ndarray, seconds: float
) -> ItemResult:
    raw = json.dumps(dict(zip(options, logprobs.tolist(), strict=True)))
    if not np.isfinite(logprobs).all():
        return ItemResult(
            item.key, "failed", raw, None, "score: non-finite log-probability", 1, 0, 0, seconds
        )
    # Probabilities renormalized over the options only (what pairwise/yes-no scores need).
    shifted = np.exp(logprobs - logprobs.max())
    probs = shifted / shifted.sum()
    parsed = {
        "choice": options[int(np.argmax(logprobs))],
        "logprobs": dict(zip(options, logprobs.tolist(), strict=True)),
        "probs": {o: float(p) for o, p in zip(options, probs, strict=True)},
    }
    return ItemResult(item.key, "ok", raw, parsed, None, 1, 0, 0, seconds)
