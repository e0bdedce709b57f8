"""`recfuse explain --run R --user U`: one recommendation of a feature-based re-ranker, explained
by the same agent loop, governance gate and rubric as the agronomy study.

Round 0 turns the SHAP values of the recommended item into an explanation; each later round the
model picks one of the ranker tools (`ranker_tools`) by scoring their names, the call passes
the Cedar gate into the ledger, and the model rewrites its explanation. Every round is graded by
the judge panel on the seven metrics (recast for recommendations, `rubric.RANKER`) and by the
deterministic checks against the numbers the tools produced; early stopping with patience on
the panel mean picks the round to show. Every LLM call goes through `LLMJob` (cached: a rerun
asks nothing twice).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recfuse import atomic
from recfuse.explain.agent import CHOOSE_USER, AgentTask, Trajectory, run_loop
from recfuse.explain.ranker import FEATURES, RankerAnalysis, ranker_quality
from recfuse.explain.ranker_tools import RANKER_TOOLS, RankerCase, ranker_gate, ranker_summary
from recfuse.explain.rubric import RANKER, early_stop, panel_scores, ranker_checks
from recfuse.llm import PromptTemplate

SYSTEM = (
    "You explain to a user of a recommender, in plain words, why an item was recommended to "
    "them. Use the numbers you are given; do not invent numbers."
)
ROUND0 = PromptTemplate(
    system=SYSTEM,
    version="explain-round0-v1",
    user=(
        "{summary}\nExplain to the user why this item was recommended to them, naming the "
        "factors that mattered most. At most 100 words."
    ),
)
REWRITE = PromptTemplate(
    system=SYSTEM,
    version="explain-rewrite-v1",
    user=(
        "Your previous explanation for the user:\n{previous}\n"
        "Analyses run so far:\n{analyses}\n"
        "Rewrite the explanation, using the analyses where they help the user see why the item "
        "was recommended. At most 100 words."
    ),
)
CHOOSE = PromptTemplate(
    system=SYSTEM, version="explain-choose-v1", trusted_fields=("tools", "used"), user=CHOOSE_USER
)


@dataclass
class ExplainSettings:
    """The command's knobs (defaults: a short run for one command)."""

    rounds: int = 3
    seeds: tuple[int, ...] = (0,)
    candidates: int = 50
    rank: int = 1
    temperature: float = 0.7
    max_tokens: int = 160
    patience: int = 2
    target_words: int = 100
    seed: int = 0


def ranker_task(case: RankerCase, gate: Any, prefix: str) -> AgentTask:
    """The recommender use of the agent loop: the ranker tools over one `RankerCase`.

    Argument rule (a 135M model writes no usable structured arguments): ``shap_value`` walks
    the features by |SHAP|, ``what_if_remove`` the history items by title similarity.
    """
    features = case.ranked_features()
    similar = [case.raw_item(i) for i, _ in case.similar_history(5)]

    def arguments_for(tool: str, round_: int, used: int) -> dict[str, Any]:
        rules: dict[str, dict[str, Any]] = {
            "shap_value": {"feature": features[used % len(features)]},
            "similar_history": {"k": 3},
            "popularity_rank": {},
            "cooccurrence": {"k": 3},
            "what_if_remove": {"item": similar[used % len(similar)]},
        }
        return rules[tool]

    return AgentTask(
        prefix=prefix,
        round0=ROUND0,
        round0_fields={"summary": ranker_summary(case)["text"]},
        rewrite=REWRITE,
        choose=CHOOSE,
        tools=tuple(RANKER_TOOLS),
        arguments_for=arguments_for,
        call=lambda tool, args: gate.call(tool, args, case),
    )


def explain_case(
    case: RankerCase, llm: Any, out: Path, settings: ExplainSettings, cache: Any = None
) -> dict[str, Any]:
    """Run the loop for ``case``, grade every round, pick one; returns the JSON-able result."""
    key = hashlib.sha256(f"{case.user_id}|{case.item}".encode()).hexdigest()[:10]
    prefix = f"explain-{key}"
    gate = ranker_gate(out / "ledger.db")
    try:
        task = ranker_task(case, gate, prefix)
        trajs = run_loop(task, list(settings.seeds), settings.rounds, llm, cache,
                         settings.temperature, settings.max_tokens)  # fmt: skip
    finally:
        gate.close()
    ids = [f"s{t.seed}r{r}" for t in trajs for r in range(len(t.explanations))]
    texts = [e for t in trajs for e in t.explanations]
    panel = panel_scores(texts, ids, llm, cache, name=f"{prefix}-judge", rubric=RANKER)
    base = ranker_summary(case)["numbers"]
    return {
        "user": case.user_id,
        "item": case.raw_item(case.item),
        "title": case.title(case.item),
        "trajectories": [_grade(t, case, panel, base, settings) for t in trajs],
    }


def _grade(
    traj: Trajectory,
    case: RankerCase,
    panel: dict[tuple[str, str, int], float],
    base: list[float],
    settings: ExplainSettings,
) -> dict[str, Any]:
    """Per round of one trajectory: text, tool call, panel grades, checks; the chosen round."""
    title, top = case.title(case.item), case.ranked_features()[0]
    judges = sorted({j for (_, _, j) in panel})
    rounds: list[dict[str, Any]] = []
    for r, text in enumerate(traj.explanations):
        grades = {m: float(np.mean([panel[(f"s{traj.seed}r{r}", m, j)] for j in judges]))
                  for m in RANKER.metrics}  # fmt: skip
        call = traj.tools[r - 1] if r else None
        rounds.append({
            "round": r, "text": text,
            "tool": None if call is None else {"name": call["tool"], "arguments": call["arguments"],
                                                "result": call["result"]["text"]},
            "panel": float(np.mean(list(grades.values()))), "grades": grades,
            "checks": ranker_checks(text, traj.known_numbers(r, base), title, top,
                                    settings.target_words),
        })  # fmt: skip
    chosen = early_stop([row["panel"] for row in rounds], settings.patience)
    return {"seed": traj.seed, "rounds": rounds, "chosen": chosen}


def explain_recommendation(
    run: str | Path,
    user_id: str,
    out: str | Path,
    settings: ExplainSettings | None = None,
    llm: Any = None,
    cache: Any = None,
    make_llm: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Load the run, train the re-ranker, explain user ``user_id``'s recommendation into ``out``.

    Writes ``explanation.json`` (everything), ``explanation.md`` (readable) and ``ledger.db``
    (every tool call, allowed or denied). The LLM: ``llm``, else ``make_llm()`` (called once the
    user and the ranker are known to be fine), else SmolLM2 (`recfuse.llm.fast_llm`).
    """
    from recfuse.runs.load import load_run

    settings = settings or ExplainSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_run(run)
    analysis = RankerAnalysis.fit(model, settings.candidates, settings.seed)
    case = RankerCase.build(analysis, str(user_id), settings.rank)
    if llm is None and make_llm is not None:
        llm = make_llm()
    if llm is None:
        from recfuse.llm import fast_llm

        llm = fast_llm()
    result = explain_case(case, llm, out, settings, cache)
    result.update(run=str(run), model=model.name, ranker=_ranker_block(case))
    atomic.write_json(out / "explanation.json", result)
    atomic.write_text(out / "explanation.md", explanation_markdown(result))
    return result


def _ranker_block(case: RankerCase) -> dict[str, Any]:
    from recfuse.evaluation.significance import paired_arrays

    quality = ranker_quality(case.analysis)
    tests = {
        m: paired_arrays(quality[f"ranker {m}"].to_numpy(), quality[f"base {m}"].to_numpy(),
                         f"{m}@10").line()
        for m in ("hr", "ndcg")
    }  # fmt: skip
    i = case.position
    return {
        "training": case.analysis.info,
        "candidates": int(len(case.order)),
        "features": {f: float(case.case.features[i, j]) for j, f in enumerate(FEATURES)},
        "shap": {f: float(case.shap[i, j]) for j, f in enumerate(FEATURES)},
        "base value": case.base_value,
        "margin": float(case.margins[i]),
        "test quality (ranker vs run model)": tests,
    }


def explanation_markdown(result: dict[str, Any]) -> str:
    """The readable report: the recommendation, the ranker, then every round with its scores."""
    rk = result["ranker"]
    lines = [
        f'# Why user {result["user"]} gets "{result["title"]}" (item {result["item"]})',
        "",
        f"Run model: {result['model']} ({result['run']}). Re-ranker: {rk['training']}.",
        "Ranker vs run model on the test items (the ranker never saw them): "
        + "; ".join(rk["test quality (ranker vs run model)"].values()),
        "",
        "| feature | value | SHAP (log-odds) |",
        "|---|---|---|",
        *(f"| {f} | {rk['features'][f]:.3f} | {rk['shap'][f]:+.3f} |" for f in rk["shap"]),
        "",
        f"Base value {rk['base value']:+.3f} + SHAP sum = ranker output {rk['margin']:+.3f}.",
    ]
    for traj in result["trajectories"]:
        lines += ["", f"## Seed {traj['seed']}: chosen round {traj['chosen']}", ""]
        for row in traj["rounds"]:
            c = row["checks"]
            tool = row["tool"]
            lines += [
                f"### Round {row['round']}" + (f" — tool {tool['name']}" if tool else ""),
                "",
                *([f"Tool result: {tool['result']}", ""] if tool else []),
                row["text"] or "(empty)",
                "",
                f"Panel {row['panel']:.2f}/7; specificity {c['specificity']:.2f}, groundedness "
                f"{c['groundedness']:.2f}, conciseness {c['conciseness']:.2f}, attribution "
                f"{c['attribution']:.2f} ({c['numbers cited']:.0f} numbers, {c['words']:.0f} words)",
                "",
            ]
    return "\n".join(lines) + "\n"
