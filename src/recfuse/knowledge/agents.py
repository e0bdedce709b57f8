"""Typed LLM agent steps: one `LLMJob` per step and chunk, cached, resumable, accounted.

An agent step is a prompt template, decoding parameters and a parse spec (validated output,
one retry). `run_step` sends a chunk of records through it and returns the parsed outputs by
record id (``None`` for a counted failure) and the job's accounting. The LLM passed in may be
wrapped by the caller (e.g. in `recfuse.governance.llm_gate.GovernedLLM`, so every call of the
agent is gated and written to a ledger): this module never reaches up to governance itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recfuse.llm.base import LLM, GenerationParams
from recfuse.llm.cache import LLMCache
from recfuse.llm.job import JobReport, LLMJob
from recfuse.llm.parsing import ParseSpec
from recfuse.llm.prompts import PromptTemplate
from recfuse.llm.sources import PromptRecord
from recfuse.split import Split


@dataclass(frozen=True)
class AgentStep:
    """One agent: who (``name``), what it is asked (``template``), how it decodes and parses."""

    name: str
    template: PromptTemplate
    params: GenerationParams
    parse: ParseSpec


@dataclass
class StepOutput:
    """Parsed outputs of one step over one chunk, by record id (None: the output failed)."""

    parsed: dict[str, Any]
    raw: dict[str, str | None]
    reasons: dict[str, str | None]
    report: JobReport

    @property
    def failed(self) -> int:
        return sum(v is None for v in self.parsed.values())


@dataclass
class CostLog:
    """Accounting of every job run, appended to a JSON-lines file (one line per job run)."""

    path: Path | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, step: str, report: JobReport) -> None:
        row = {"step": step, **report.as_dict()}
        self.runs.append(row)
        if self.path is not None and report.completed + report.failed > 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    def new_calls(self) -> int:
        """Prompts this process sent to the model (answers already cached are not counted)."""
        return sum(int(r["completed"]) + int(r["failed"]) for r in self.runs)


def run_step(
    step: AgentStep,
    job_name: str,
    records: Sequence[PromptRecord],
    llm: LLM,
    cache: LLMCache,
    split: Split | None = None,
    batch_size: int = 16,
    costs: CostLog | None = None,
) -> StepOutput:
    """Answer ``records`` with ``step`` (only prompts without a cached answer reach ``llm``).

    ``split`` is required when records carry (user, item) interactions: `LLMJob` refuses any
    pair outside the training period before a single call.
    """
    job = LLMJob(
        job_name,
        records,
        step.template,
        llm,
        step.params,
        parse=step.parse,
        cache=cache,
        split=split,
        progress=False,
    )
    report = job.run(batch_size=batch_size)
    parsed: dict[str, Any] = {}
    raw: dict[str, str | None] = {}
    reasons: dict[str, str | None] = {}
    for record_id, item in job.plan():
        row = cache.get(item.key)
        ok = row is not None and row.status == "ok"
        parsed[record_id] = row.parsed if ok and row is not None else None
        raw[record_id] = row.raw_text if row is not None else None
        reasons[record_id] = None if ok else (row.reason if row is not None else "no answer")
    if costs is not None:
        costs.add(step.name, report)
    return StepOutput(parsed, raw, reasons, report)


__all__ = ["AgentStep", "CostLog", "StepOutput", "run_step"]
