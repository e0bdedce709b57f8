"""`LLMJob`: a named prompt set run through a backend into the shared cache, resumably.

The driver (1) builds every prompt from its template and record, (2) keys it, (3) registers the
job's prompt set, (4) asks the cache which keys are answered, and (5) sends only the rest to an
executor, storing each batch's results in one transaction as they arrive. A job killed at any
moment (even SIGKILL) has lost at most the batches in flight; a rerun computes exactly the
prompts without a stored answer, and a stored answer is never computed again.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from recfuse.errors import ConfigError, LeakageError
from recfuse.llm.backend_spec import BackendSpec
from recfuse.llm.base import LLM, GenerationParams, prompt_identity
from recfuse.llm.cache import LLMCache, OutputRow, cache_key
from recfuse.llm.job_config import JobConfig
from recfuse.llm.leakage import check_pairs_in_train
from recfuse.llm.parsing import JsonParser, ParseSpec
from recfuse.llm.prompts import PromptTemplate, second_fence
from recfuse.llm.sources import PromptRecord
from recfuse.llm.work import ItemResult, TaskSpec, WorkItem
from recfuse.split import Split

# A kill loses at most one job batch; score batches are cheap, so they can be larger.
SCORE_BATCHES_PER_JOB_BATCH = 8
# Score prompts that share their text through the first fenced field (a user's history) at
# least this often are kept together in a job batch, where CTranslate2 computes that text once.
MIN_SHARED_GROUP = 3


def _prompt_chars(prompt: dict[str, Any]) -> int:
    """Characters of a prompt in `prompt_identity` form (a cheap proxy for its token count)."""
    if "raw" in prompt:
        return len(prompt["raw"])
    return sum(len(m.get("content", "")) for m in prompt["chat"])


def _shared_text(prompt: dict[str, Any]) -> str:
    """The last message up to its second data fence: what a user's pairwise prompts share
    (template, fenced history); "" for a prompt with fewer than two fenced fields."""
    if "raw" in prompt or not prompt["chat"]:
        return ""
    text = str(prompt["chat"][-1].get("content", ""))
    second = second_fence(text)
    return text[:second] if second > 0 else ""


@dataclass(frozen=True)
class JobReport:
    """What one run of a job did (prompts already answered before it are ``already_done``)."""

    job: str
    executor: str
    total: int
    already_done: int
    completed: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    model_seconds: float
    wall_seconds: float

    @property
    def prompts_per_s(self) -> float:
        return (self.completed + self.failed) / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_seconds if self.wall_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out.update(prompts_per_s=self.prompts_per_s, tokens_per_s=self.tokens_per_s)
        return out


class LLMJob:
    """A named, resumable prompt set.

    Args:
        name: the job's name in the cache (``recfuse llm status``/``export`` use it).
        records: one `PromptRecord` per prompt (ids unique).
        template: fills and fences each record's fields into a chat prompt.
        backend: a `BackendSpec` (built lazily; required for the Ray executor) or a built `LLM`.
        params: decoding parameters.
        parse: how outputs are parsed and how often a parse failure is retried.
        task: ``generate`` or ``score`` (log-probabilities of ``options``).
        cache: an `LLMCache` or a path (default: the shared cache under ``$RECFUSE_CACHE``).
        split: required when records carry (user, item) interactions; every one must be a
            training interaction, or `LeakageError` is raised before any model call.
        retry_failed: recompute stored failures instead of counting them as done.
    """

    def __init__(
        self,
        name: str,
        records: Sequence[PromptRecord],
        template: PromptTemplate,
        backend: BackendSpec | LLM | None = None,
        params: GenerationParams | None = None,
        parse: ParseSpec | None = None,
        task: str = "generate",
        options: Sequence[str] = (),
        cache: LLMCache | str | Path | None = None,
        split: Split | None = None,
        retry_failed: bool = False,
        progress: bool = True,
    ):
        if task not in ("generate", "score"):
            raise ConfigError(f"task: must be generate or score, not {task!r}")
        if task == "score" and len(options) < 2:
            raise ConfigError("options: a score task needs at least two options")
        self.name = name
        self.records = list(records)
        self.template = template
        self.backend = backend if backend is not None else BackendSpec()
        self.parse = parse or ParseSpec()
        params = params or GenerationParams()
        if self.parse.kind == "json" and params.json_schema is None:
            parser = self.parse.build()
            assert isinstance(parser, JsonParser)
            params = dataclasses.replace(params, json_schema=parser.json_schema())
        self.task = TaskSpec(task, params, self.parse, tuple(options))
        self.cache = cache if isinstance(cache, LLMCache) else LLMCache(cache)
        self.retry_failed = retry_failed
        self.progress = progress
        self._llm: LLM | None = None if isinstance(self.backend, BackendSpec) else self.backend
        self._identity: tuple[str, str] | None = None
        self._check_leakage(split)

    @classmethod
    def from_config(
        cls, config: JobConfig, base_dir: Path | None = None, **overrides: Any
    ) -> LLMJob:
        """Build a job from a validated `JobConfig` (relative paths resolve against ``base_dir``)."""
        records, split = config.source.load(base_dir)
        cache = config.cache
        if cache is not None and base_dir is not None and not Path(cache).is_absolute():
            cache = str(base_dir / cache)
        kwargs: dict[str, Any] = dict(
            template=config.template.build(),
            backend=config.backend,
            params=config.params.build(),
            parse=config.parse,
            task=config.task,
            options=config.options,
            cache=cache,
            split=split,
            retry_failed=config.retry_failed,
        )
        kwargs.update(overrides)
        return cls(config.name, records, **kwargs)

    # ------------------------------------------------------------------ planning

    def _check_leakage(self, split: Split | None) -> None:
        pairs = [pair for record in self.records for pair in record.interactions]
        if not pairs:
            return
        if split is None:
            raise LeakageError(
                f"job {self.name!r}: records carry user interactions but no split was given; "
                "prompts from user histories must be checked against the training period"
            )
        check_pairs_in_train(split, pairs)

    @property
    def llm(self) -> LLM:
        """The backend, built on first use."""
        if self._llm is None:
            assert isinstance(self.backend, BackendSpec)
            self._llm = self.backend.build()
        return self._llm

    def identity(self) -> tuple[str, str]:
        """``(backend, model_id)`` of the cache keys, without loading a model when possible."""
        if self._identity is None:
            if isinstance(self.backend, BackendSpec) and self._llm is None:
                self._identity = self.backend.identity()
            else:
                self._identity = (self.llm.backend, self.llm.model_id)
        return self._identity

    def plan(self) -> list[tuple[str, WorkItem]]:
        """``[(record id, WorkItem)]`` for every record, in order."""
        backend, model_id = self.identity()
        params = self.task.key_params()
        plan = []
        for record in self.records:
            prompt = prompt_identity(self.template.build(record.fields))
            key = cache_key(backend, model_id, self.template.key, prompt, params)
            plan.append((record.id, WorkItem(key, prompt)))
        return plan

    # ------------------------------------------------------------------ running

    def run(
        self, executor: str = "local", workers: int = 2, batch_size: int | None = None
    ) -> JobReport:
        """Answer every prompt without a stored answer; return this run's accounting."""
        started, wall0 = time.time(), time.perf_counter()
        plan = self.plan()
        self.cache.register_job(
            self.name, self._describe(), [(pid, item.key) for pid, item in plan]
        )
        done = self.cache.done_keys(
            [item.key for _, item in plan], include_failed=not self.retry_failed
        )
        todo: list[WorkItem] = []
        queued: set[str] = set()
        for _, item in plan:
            if item.key not in done and item.key not in queued:  # same prompt twice: ask once
                todo.append(item)
                queued.add(item.key)
        batches = self._batches(todo, batch_size)
        runner = self._executor(executor, workers) if batches else None
        counts: dict[str, int] = {
            "completed": 0,
            "failed": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }
        model_seconds = 0.0
        unique_done = len({item.key for _, item in plan}) - len(todo)
        bar = tqdm(
            total=unique_done + len(todo),
            initial=unique_done,
            desc=self.name,
            unit="prompt",
            disable=not self.progress,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        by_key = {item.key: item for item in todo}
        try:
            if runner is not None:
                for results in runner.map(batches, self.task):
                    self.cache.put_many(self._row(by_key[r.key], r) for r in results)
                    for r in results:
                        counts["completed" if r.status == "ok" else "failed"] += 1
                        counts["prompt_tokens"] += r.prompt_tokens
                        counts["completion_tokens"] += r.completion_tokens
                        model_seconds += r.seconds
                    bar.update(len(results))
                    elapsed = time.perf_counter() - wall0
                    bar.set_postfix(
                        failed=counts["failed"],
                        tok_s=f"{counts['completion_tokens'] / max(elapsed, 1e-9):.1f}",
                    )
        finally:
            bar.close()
            if runner is not None:
                runner.close()
            wall = time.perf_counter() - wall0
            self.cache.record_run(
                self.name,
                executor,
                started,
                wall_seconds=wall,
                model_seconds=model_seconds,
                **counts,
            )
        return JobReport(
            self.name,
            executor,
            len(plan),
            len(plan) - len(todo),
            counts["completed"],
            counts["failed"],
            counts["prompt_tokens"],
            counts["completion_tokens"],
            model_seconds,
            wall,
        )

    def _batches(self, todo: list[WorkItem], batch_size: int | None) -> list[list[WorkItem]]:
        """Split the remaining work into executor batches, similar prompt lengths together.

        Sorting by rendered length (a stable sort, so reruns batch alike) keeps padding and
        CTranslate2's uneven-length decoding small across the whole job. A score batch holds
        `SCORE_BATCHES_PER_JOB_BATCH` backend batches (one `score_many` call buckets them by
        exact length inside) unless a batch size is given (here or in the backend block).
        Score prompts sharing their text through the first fenced field at least
        `MIN_SHARED_GROUP` times come after the others, grouped by that text, so one user's
        prompts reach the same `score_many` call (which then computes the history once).
        """
        if batch_size is None and isinstance(self.backend, BackendSpec):
            batch_size = self.backend.batch_size  # set in the job's backend block
        if batch_size is None:
            default = (
                self.backend.effective_batch_size()
                if isinstance(self.backend, BackendSpec)
                else int(getattr(self.llm, "batch_size", 8))
            )
            batch_size = default * (SCORE_BATCHES_PER_JOB_BATCH if self.task.task == "score" else 1)
        size = max(1, batch_size)
        if self.task.task == "score":
            shared = {item.key: _shared_text(item.prompt) for item in todo}
            counts = Counter(shared.values())
            group = {k: t if counts[t] >= MIN_SHARED_GROUP else "" for k, t in shared.items()}
            ordered = sorted(todo, key=lambda i: (group[i.key], _prompt_chars(i.prompt)))
        else:
            ordered = sorted(todo, key=lambda item: _prompt_chars(item.prompt))
        return [ordered[i : i + size] for i in range(0, len(ordered), size)]

    def _executor(self, kind: str, workers: int) -> Any:
        from recfuse.llm.executors import LocalExecutor, RayExecutor

        if kind == "local":
            return LocalExecutor(self.llm)
        if kind == "ray":
            if not isinstance(self.backend, BackendSpec):
                raise ConfigError(
                    "executor ray: give the backend as a BackendSpec (workers build their own)"
                )
            return RayExecutor(self.backend, workers=workers)
        raise ConfigError(f"executor: must be local or ray, not {kind!r}")

    def _row(self, item: WorkItem, result: ItemResult) -> OutputRow:
        backend, model_id = self.identity()
        return OutputRow(
            result.key,
            backend,
            model_id,
            self.template.key,
            item.prompt,
            self.task.key_params(),
            result.status,
            result.raw_text,
            result.parsed,
            result.reason,
            result.attempts,
            result.prompt_tokens,
            result.completion_tokens,
            result.seconds,
        )

    def _describe(self) -> dict[str, Any]:
        backend, model_id = self.identity()
        return {
            "backend": backend,
            "model": model_id,
            "template": self.template.key,
            "params": self.task.key_params(),
            "records": len(self.records),
        }
