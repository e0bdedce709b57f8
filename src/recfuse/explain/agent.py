"""The explanation agent: round 0 from SHAP, then one tool and one rewrite per round.

The loop (`run_loop`) is one piece of code for every use; an `AgentTask` says what it explains:
its prompts, its tool set (behind its own governance gate) and the argument rule. The agronomy
use is `field_task` / `run_agent`; the recommender use is `recfuse.explain.ranker_agent`.

Trajectories of several seeds advance together, so each round is one batched `LLMJob` (cached
and resumable: a rerun asks the model nothing it was asked before). The model's own earlier text
goes back into the prompt fenced as data; the numbers the tools produced are ours and trusted.

Tool choice is the model's: it scores the five tool names as continuations of a choice prompt
(`LLM.score`, so the answer is always a valid tool). A tool's arguments follow a fixed rule per
round (documented in `arguments_for`), because a 135M-parameter model does not produce usable
structured arguments; the doc says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recfuse.explain.field import ZONES, FieldAnalysis
from recfuse.explain.tools import TOOLS, ToolGate, shap_summary
from recfuse.llm import GenerationParams, LLMJob, PromptRecord, PromptTemplate

SYSTEM = (
    "You are an agronomist who explains a yield model to a farmer in plain words. "
    "Use the numbers you are given; do not invent numbers."
)
ROUND0 = PromptTemplate(
    system=SYSTEM,
    version="xai-round0-v1",
    trusted_fields=("summary", "prices"),
    user=(
        "{summary}\nPrices: {prices}.\n"
        "Explain to the farmer what drives yield on this field and how much nitrogen to apply "
        "per zone (W, HT, E, LO). At most 150 words."
    ),
)
REWRITE = PromptTemplate(
    system=SYSTEM,
    version="xai-rewrite-v1",
    trusted_fields=("analyses", "prices"),
    user=(
        "Your previous explanation for the farmer:\n{previous}\n"
        "Analyses run so far:\n{analyses}\nPrices: {prices}.\n"
        "Rewrite the explanation, using the analyses where they help the farmer decide how "
        "much nitrogen to apply per zone. At most 150 words."
    ),
)
#: the tool-choice request of every use of the loop (each with its own system message)
CHOOSE_USER = (
    "Current explanation:\n{explanation}\nTools: {tools}. Already used: {used}.\n"
    "Which one analysis would improve the explanation most? Answer with the tool name."
)
CHOOSE = PromptTemplate(
    system=SYSTEM, version="xai-choose-v1", trusted_fields=("tools", "used"), user=CHOOSE_USER
)
TOOL_NAMES = tuple(TOOLS)


@dataclass
class Trajectory:
    """One seed's rounds: explanation text, tool calls and their results, per round."""

    seed: int
    explanations: list[str] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)  # round >= 1: name, args, result
    analyses: list[str] = field(default_factory=list)

    def known_numbers(self, upto: int, base: list[float]) -> list[float]:
        """Every number the explanation of round ``upto`` was given (SHAP, prices, tools)."""
        out = list(base)
        for call in self.tools[:upto]:
            out += call["result"]["numbers"]
        return out


def arguments_for(tool: str, round_: int, used: int) -> dict[str, Any]:
    """The deterministic argument rule: cycle zones, raise the N price step by step."""
    zone = ZONES[(round_ + used) % len(ZONES)]
    rules: dict[str, dict[str, Any]] = {
        "partial_dependence": {"zone": zone},
        "shap_interaction": {"a": "nitro", "b": ("topo", "bv", "year")[used % 3]},
        "profit_table": {},
        "price_sensitivity": {"n_price_factor": (1.5, 0.5, 2.0, 0.75)[used % 4]},
        "what_if": {"zone": zone, "nitro": (100.0, 60.0, 140.0, 30.0)[used % 4]},
    }
    return rules[tool]


@dataclass
class AgentTask:
    """One use of the agent loop: its prompts, its tool set and how a tool gets its arguments.

    Job names are ``{prefix}-round{r}-seed{s}`` and ``{prefix}-choose{r}``; every rewrite prompt
    gets ``previous`` (the last explanation), ``analyses`` (the tool texts so far) and the
    ``context`` fields. ``call(tool, arguments)`` runs one tool through the governance gate.
    """

    prefix: str
    round0: PromptTemplate
    round0_fields: dict[str, Any]
    rewrite: PromptTemplate
    choose: PromptTemplate
    tools: tuple[str, ...]
    arguments_for: Callable[[str, int, int], dict[str, Any]]
    call: Callable[[str, dict[str, Any]], dict[str, Any]]
    context: dict[str, Any] = field(default_factory=dict)


def field_task(analysis: FieldAnalysis, gate: ToolGate) -> AgentTask:
    """The agronomy use: the field tools over one fitted yield model."""
    prices = (
        f"corn ${analysis.prices.corn_per_q:g} per quintal, "
        f"nitrogen ${analysis.prices.n_per_kg:g} per kg"
    )
    summary = shap_summary(analysis)
    return AgentTask(
        prefix="xai",
        round0=ROUND0,
        round0_fields={"summary": summary["text"], "prices": prices},
        rewrite=REWRITE,
        choose=CHOOSE,
        tools=TOOL_NAMES,
        arguments_for=arguments_for,
        call=lambda tool, args: gate.call(tool, args, analysis),
        context={"prices": prices},
    )


def run_agent(
    analysis: FieldAnalysis,
    seeds: list[int],
    rounds: int,
    llm: Any,
    gate: ToolGate,
    cache: Any = None,
    temperature: float = 0.7,
    max_tokens: int = 160,
) -> list[Trajectory]:
    """Rounds 0..``rounds`` for every seed: SHAP round 0, then choose, call, rewrite."""
    task = field_task(analysis, gate)
    return run_loop(task, seeds, rounds, llm, cache, temperature, max_tokens)


def run_loop(
    task: AgentTask,
    seeds: list[int],
    rounds: int,
    llm: Any,
    cache: Any = None,
    temperature: float = 0.7,
    max_tokens: int = 160,
) -> list[Trajectory]:
    """Rounds 0..``rounds`` of ``task`` for every seed: round 0, then choose, call, rewrite."""
    trajs = [Trajectory(s) for s in seeds]

    def generate(
        name: str, template: PromptTemplate, fields: list[dict[str, Any]], r: int
    ) -> list[str]:
        # One job per seed: the sampling seed is part of the decoding parameters, so the seeds'
        # trajectories differ (one shared seed made identical prompts identical answers).
        texts = []
        for t, f in zip(trajs, fields, strict=True):
            params = GenerationParams(
                max_tokens=max_tokens, temperature=temperature, seed=1000 * t.seed + r
            )
            job_name = f"{name}-seed{t.seed}"
            job = LLMJob(job_name, [PromptRecord(f"seed{t.seed}", f)], template, backend=llm,
                         params=params, cache=cache, progress=False)  # fmt: skip
            job.run()
            texts += [(o["raw_text"] or "").strip() for o in job.cache.job_outputs(job_name)]
        return texts

    first = generate(f"{task.prefix}-round0", task.round0, [task.round0_fields] * len(trajs), 0)
    for t, text in zip(trajs, first, strict=True):
        t.explanations.append(text)
    for r in range(1, rounds + 1):
        choices = choose_tools(trajs, llm, cache, r, task)
        for t, tool in zip(trajs, choices, strict=True):
            used = sum(c["tool"] == tool for c in t.tools)
            args = task.arguments_for(tool, r, used)
            result = task.call(tool, args)
            t.tools.append({"round": r, "tool": tool, "arguments": args, "result": result})
            t.analyses.append(f"{r}. {result['text']}")
        fields = [
            {"previous": t.explanations[-1], "analyses": "\n".join(t.analyses), **task.context}
            for t in trajs
        ]
        rewritten = generate(f"{task.prefix}-round{r}", task.rewrite, fields, r)
        for t, text in zip(trajs, rewritten, strict=True):
            t.explanations.append(text)
    return trajs


def choose_tools(
    trajs: list[Trajectory], llm: Any, cache: Any, round_: int, task: AgentTask
) -> list[str]:
    """The tool each trajectory's model scores highest (log-prob per character of its name)."""
    records = [
        PromptRecord(
            f"seed{t.seed}",
            {
                "explanation": t.explanations[-1],
                "tools": ", ".join(task.tools),
                "used": ", ".join(c["tool"] for c in t.tools) or "none",
            },
        )
        for t in trajs
    ]
    name = f"{task.prefix}-choose{round_}"
    options = [f" {n}" for n in task.tools]
    job = LLMJob(
        name,
        records,
        task.choose,
        backend=llm,
        task="score",
        options=options,
        cache=cache,
        progress=False,
    )
    job.run()
    picks = {}
    for out in job.cache.job_outputs(name):
        logprobs = out["parsed"]["logprobs"]
        # per character: a summed log-prob would favour the shortest tool name
        per_char = [logprobs[o] / len(o) for o in options]
        picks[out["id"]] = task.tools[int(np.argmax(per_char))]
    return [picks[f"seed{t.seed}"] for t in trajs]
