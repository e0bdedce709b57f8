"""Agentic XAI: the profit optimum, honest checks, the tool gate, cached reruns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recfuse.explain.field import FieldAnalysis, Prices, load_field, optimal_n, spatial_blocks
from recfuse.explain.rubric import checks, cited_numbers, matches
from recfuse.explain.tools import ToolGate
from recfuse.governance.governor import PolicyDenied
from recfuse.governance.ledger import Ledger
from recfuse.runs.study import verdict
from recfuse.studies.xai import early_stop


def test_profit_optimal_n_on_a_quadratic_response() -> None:
    # yield = 50 + b N - c N^2: profit p_y (50 + bN - cN^2) - p_n N peaks at N* = (b - p_n/p_y) / 2c
    b, c, prices = 0.4, 0.0015, Prices(corn_per_q=10.0, n_per_kg=1.0)
    grid = np.linspace(0, 200, 2001)
    n_star, profit = optimal_n(grid, 50 + b * grid - c * grid**2, prices)
    expected = (b - prices.n_per_kg / prices.corn_per_q) / (2 * c)
    assert n_star == pytest.approx(expected, abs=0.1)
    assert profit == pytest.approx(10 * (50 + b * expected - c * expected**2) - expected, rel=1e-6)


def test_groundedness_marks_true_only_numbers_in_the_tool_outputs() -> None:
    known = [15.0, 65.0, 701.8, 11.0, 0.9]
    text = (
        "Apply 15 kg/ha in zone W for 65 q/ha and $701.8 per ha; at 11 $/q expect 88 q/ha, 3.5 t."
    )
    scores = checks(text, known, (11.0, 0.9), [15.0])
    cited = cited_numbers(text)
    grounded = [v for v in cited if matches(v, known)]
    assert grounded == [15.0, 65.0, 701.8, 11.0]
    assert all(any(abs(g - k) <= max(0.5, 0.02 * k) for k in known) for g in grounded)
    assert scores["groundedness"] == pytest.approx(4 / 6)
    assert scores["specificity"] == pytest.approx(0.4)
    assert scores["cost"] == pytest.approx(0.25 + 0.5)  # corn price cited, N price not; N* stated
    assert checks("No numbers at all.", known, (11.0, 0.9), [15.0])["groundedness"] == 0.0


def test_tool_outside_the_set_is_denied_and_logged(tmp_path: Path) -> None:
    frame = load_field().sample(600, random_state=0)
    analysis = FieldAnalysis.fit(frame, Prices(), 0, bootstrap=0)
    gate = ToolGate(tmp_path / "ledger.db")
    result = gate.call("what_if", {"zone": "HT", "nitro": 60.0}, analysis)
    assert "zone HT" in result["text"] and 60.0 in result["numbers"]
    with pytest.raises(PolicyDenied):
        gate.call("delete_field_data", {}, analysis)
    gate.close()
    with Ledger(tmp_path / "ledger.db") as led:
        calls = [e for e in led.entries() if e["action"] == "call_tool"]
    assert [(e["resource"]["id"], e["decision"]) for e in calls] == [
        ("what_if", "allow"),
        ("delete_field_data", "deny"),
    ]


def test_spatial_blocks_keep_neighbours_together() -> None:
    frame = load_field()
    blocks = spatial_blocks(frame, 60.0)
    assert 20 < blocks.max() + 1 < 200
    # points of one block lie within ~one block diagonal of each other
    lat_m = (frame["lat"] - frame["lat"].min()) * 111_320
    spread = lat_m.groupby(blocks).agg(lambda s: s.max() - s.min())
    assert spread.max() <= 61.0


def test_early_stop_with_patience() -> None:
    assert early_stop([1.0, 2.0, 3.0, 2.5, 2.4, 4.0], patience=2) == 2
    assert early_stop([1.0, 2.0, 3.0, 2.5, 3.5, 4.0], patience=2) == 5
    assert early_stop([3.0, 2.0, 1.0], patience=1) == 0


def _seed(seed: int, grades: dict[str, list[float]]) -> Any:
    from recfuse.runs.study import Cell, CellResult, Finished

    rows = [{"user": u, **{f"r{r}": g for r, g in enumerate(gs)}} for u, gs in grades.items()]
    return Finished(Cell("agent", seed, "agronomy"), f"k{seed}", CellResult({}, pd.DataFrame(rows)))


def test_cross_fit_judges_each_unit_at_the_round_the_other_judges_chose() -> None:
    from recfuse.studies.xai import cross_fit_grades

    # judge 0 peaks at round 2, judge 1 at round 1: each is read where the *other* stopped
    cell = _seed(0, {"A|0": [1, 2, 5, 1], "B|0": [1, 2, 5, 1], "A|1": [1, 4, 2, 1]})
    out = cross_fit_grades(cell, patience=1)
    assert out.to_dict() == {"A|0": 2.0, "A|1": 2.0, "B|0": 2.0}


def test_early_stopping_is_judged_by_held_out_judges() -> None:
    """Grades drift down round by round; judge 0 alone likes round 1, judge 1 alone round 7
    (beyond patience). Picking the round on both judges' grades and testing on them would
    call judge 0's whim a gain; held-out judges do not."""
    from functools import partial

    from recfuse.runs.study import Results
    from recfuse.studies.xai import claims, round_comparison, round_grades

    rng = np.random.default_rng(0)

    def grades(judge: int) -> list[float]:
        g = 3.0 - 0.01 * np.arange(11) + rng.normal(0, 0.002, 11)
        g[1 if judge == 0 else 7] += 1.0
        return g.tolist()

    units = [f"{m}|{j}" for m in "ABCDEFG" for j in range(2)]
    cells = [_seed(s, {u: grades(int(u[-1])) for u in units}) for s in range(3)]
    for f in cells:
        f.result.metrics.update({f"r{r} panel": 0.0 for r in range(11)})
    results = Results(cells)

    def picked_on_same_grades(f: Any) -> pd.Series:
        frame = f.result.per_user.set_index("user").sort_index()
        r = early_stop(frame[[f"r{i}" for i in range(11)]].mean().tolist(), patience=2)
        return frame[f"r{r}"]

    start = partial(round_grades, rounds=[0])
    biased = round_comparison(results, "agronomy", picked_on_same_grades, start, ("a", "b"))
    assert verdict("biased", biased).status == "holds"  # what the cross-fit must not repeat

    verdicts, _ = claims(results, "agronomy", rounds=10, patience=2)
    assert [v.claim for v in verdicts] == [
        "quality rises from round 0 to the paper's peak rounds 3-4",
        "quality declines after rounds 3-4",
        "early stopping (judged by held-out judges) beats round 0",
    ]
    # the drift is real (round 10 < rounds 3-4); the held-out early stop is no gain
    assert [v.status for v in verdicts] == ["does not hold", "holds", "does not hold"], [
        v.evidence for v in verdicts
    ]


class CountingLLM:
    """The real SmolLM2 backend, counting the prompts that reach it."""

    def __init__(self, llm: Any) -> None:
        self.llm, self.calls = llm, 0
        self.backend, self.model_id = llm.backend, llm.model_id

    def generate(self, prompts: Any, params: Any = None) -> Any:
        self.calls += len(prompts)
        return self.llm.generate(prompts, params)

    def score(self, prompt: Any, options: Any) -> Any:
        self.calls += 1
        return self.llm.score(prompt, options)

    def score_many(self, items: Any) -> Any:
        from recfuse.llm.base import score_many

        self.calls += len(items)
        return score_many(self.llm, items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)


@pytest.mark.slow
def test_rerun_makes_no_new_llm_calls(tmp_path: Path) -> None:
    from recfuse.explain.agent import run_agent
    from recfuse.llm import load_llm

    frame = load_field().sample(500, random_state=1)
    analysis = FieldAnalysis.fit(frame, Prices(), 0, bootstrap=0)
    llm = CountingLLM(load_llm())
    cache = tmp_path / "llm.sqlite"
    first = run_agent(analysis, [0], 1, llm, ToolGate(tmp_path / "a.db"), cache, max_tokens=12)
    asked = llm.calls
    assert asked >= 2 + 1  # round 0, round 1's rewrite, round 1's tool choice
    again = run_agent(analysis, [0], 1, llm, ToolGate(tmp_path / "b.db"), cache, max_tokens=12)
    assert llm.calls == asked
    assert again[0].explanations == first[0].explanations
