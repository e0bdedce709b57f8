"""`recfuse explain`: a re-ranker over a real EASE run on ml-100k, SHAP, the gate, the loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recfuse.explain.ranker import FEATURES, RankerAnalysis, stage_histories
from recfuse.explain.ranker_agent import ExplainSettings, explain_case
from recfuse.explain.ranker_tools import RankerCase, ranker_gate, ranker_summary
from recfuse.explain.rubric import cited_numbers, matches, ranker_checks
from recfuse.governance.governor import PolicyDenied
from recfuse.governance.ledger import Ledger
from recfuse.llm import Generation
from recfuse.runs import load_config, run_config
from recfuse.runs.load import load_run

USER = "196"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    overrides = [f"output={root}", "name=ease", "data.name=ml-100k", "model.name=ease"]
    return run_config(load_config(None, [*overrides, "eval.ks=[10]"]))


@pytest.fixture(scope="module")
def analysis(run: Path) -> RankerAnalysis:
    return RankerAnalysis.fit(load_run(run), n_candidates=30, seed=0)


def _replaced(split: Any, part: str, seed: int) -> Any:
    """The split with ``part``'s items swapped for random other items (same users, times)."""
    frame = getattr(split, part).copy()
    rng = np.random.default_rng(seed)
    frame["item"] = (frame["item"] + rng.integers(1, split.n_items, len(frame))) % split.n_items
    return dataclasses.replace(split, **{part: frame})


def _refit(run: Path, analysis: RankerAnalysis, part: str) -> RankerAnalysis:
    model = load_run(run)
    model.split_ = _replaced(model.split_, part, seed=3)
    return RankerAnalysis.fit(model, 30, 0, vectors=analysis.stats.vectors)


def test_ranker_features_use_no_test_item(run: Path, analysis: RankerAnalysis) -> None:
    other = _refit(run, analysis, "test")  # every test item different
    assert np.array_equal(other.stats.popularity, analysis.stats.popularity)
    assert np.array_equal(other.stats.first_seen, analysis.stats.first_seen, equal_nan=True)
    assert (other.stats.matrix != analysis.stats.matrix).nnz == 0
    for user in (0, 5, 100):
        a, b = analysis.user_case(user), other.user_case(user)
        assert np.array_equal(a.items, b.items) and np.array_equal(a.features, b.features)
        assert np.array_equal(analysis.margins(a.features), other.margins(b.features))
    # the explained history is training + validation, never the test item
    split = analysis.model.split_
    test_items = split.test.groupby("user")["item"].first()
    histories, _ = stage_histories(split, "test")
    for user in (0, 5, 100):
        seen = set(split.train.loc[split.train.user == user, "item"])
        seen |= set(split.valid.loc[split.valid.user == user, "item"])
        assert set(histories[user]) == seen and test_items[user] not in seen
    # and the check can fail: the labels do come from validation, so changing it changes the ranker
    moved = _refit(run, analysis, "valid")
    x = analysis.user_case(0).features
    assert not np.allclose(moved.margins(x), analysis.margins(x))


def test_shap_values_sum_to_the_ranker_output(analysis: RankerAnalysis) -> None:
    case = RankerCase.build(analysis, USER)
    assert case.shap.shape == (len(case.order), len(FEATURES))
    np.testing.assert_allclose(case.shap.sum(axis=1) + case.base_value, case.margins, atol=1e-6)
    assert case.position == case.order[0] and case.margins[case.position] == case.margins.max()
    summary = ranker_summary(case)
    for j in range(len(FEATURES)):
        assert round(float(case.shap[case.position, j]), 2) in [
            round(v, 2) for v in summary["numbers"] + [-v for v in summary["numbers"]]
        ]


def test_ranker_tool_outside_the_set_is_denied_and_logged(
    analysis: RankerAnalysis, tmp_path: Path
) -> None:
    case = RankerCase.build(analysis, USER)
    gate = ranker_gate(tmp_path / "ledger.db")
    result = gate.call("shap_value", {"feature": "popularity"}, case)
    assert "popularity" in result["text"] and result["numbers"] == cited_numbers(result["text"])
    for name in ("profit_table", "read_test_items"):  # an agronomy tool, an unknown one
        with pytest.raises(PolicyDenied):
            gate.call(name, {}, case)
    gate.close()
    with Ledger(tmp_path / "ledger.db") as led:
        calls = [e for e in led.entries() if e["action"] == "call_tool"]
    assert [(e["resource"]["id"], e["decision"]) for e in calls] == [
        ("shap_value", "allow"),
        ("profit_table", "deny"),
        ("read_test_items", "deny"),
    ]


def test_what_if_removing_a_history_item(analysis: RankerAnalysis, tmp_path: Path) -> None:
    case = RankerCase.build(analysis, USER)
    (item, _), *_ = case.similar_history(1)
    gate = ranker_gate(tmp_path / "ledger.db")
    text = gate.call("what_if_remove", {"item": case.raw_item(item)}, case)["text"]
    assert case.title(item) in text and case.title(case.item) in text
    not_seen = next(i for i in range(case.analysis.model.split_.n_items)
                    if i not in set(case.case.history.tolist()))  # fmt: skip
    with pytest.raises(ValueError, match="not in user"):
        gate.call("what_if_remove", {"item": case.raw_item(not_seen)}, case)
    gate.close()


class FakeExplainerLLM:
    """Control-flow double (unit tests only): fixed texts, prefers one tool, counts calls."""

    backend, model_id, batch_size = "fake", "fake-explainer", 4

    def __init__(self, favourite: str) -> None:
        self.favourite, self.calls = favourite, 0

    def generate(self, prompts: Sequence[Any], params: Any = None) -> list[Generation]:
        self.calls += len(prompts)
        return [
            Generation(f"Recommended because of {n} similar items.") for n in range(len(prompts))
        ]

    def score(self, prompt: Any, options: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return np.array([-1.0 if self.favourite in o else -30.0 for o in options])


def test_loop_control_flow(analysis: RankerAnalysis, tmp_path: Path) -> None:
    case = RankerCase.build(analysis, USER)
    llm = FakeExplainerLLM("popularity_rank")
    settings = ExplainSettings(rounds=2, seeds=(0, 1))
    cache = tmp_path / "llm.sqlite"
    first = explain_case(case, llm, tmp_path / "a", settings, cache)
    asked = llm.calls
    assert asked > 0
    for traj in first["trajectories"]:
        assert [r["round"] for r in traj["rounds"]] == [0, 1, 2]
        assert [r["tool"]["name"] for r in traj["rounds"][1:]] == ["popularity_rank"] * 2
        assert 0 <= traj["chosen"] <= 2
        assert all(1 <= r["panel"] <= 7 for r in traj["rounds"])
    again = explain_case(case, llm, tmp_path / "b", settings, cache)
    assert llm.calls == asked and again == first
    with Ledger(tmp_path / "a" / "ledger.db") as led:
        assert sum(e["action"] == "call_tool" for e in led.entries()) == 4  # 2 rounds × 2 seeds


@pytest.mark.slow
def test_rerun_makes_no_new_llm_calls(analysis: RankerAnalysis, tmp_path: Path) -> None:
    from test_xai import CountingLLM

    from recfuse.llm import load_llm

    case = RankerCase.build(analysis, USER)
    llm = CountingLLM(load_llm())
    # round 0 only: the loop's later rounds rerun from the cache in the control-flow test
    settings = ExplainSettings(rounds=0, max_tokens=12)
    cache = tmp_path / "llm.sqlite"
    first = explain_case(case, llm, tmp_path / "a", settings, cache)
    asked = llm.calls
    assert asked == 1 + 7 * 2  # round 0's explanation; 7 metrics × 2 judges grade it
    again = explain_case(case, llm, tmp_path / "b", settings, cache)
    assert llm.calls == asked and again == first


def test_ranker_checks_hold_numbers_to_the_tool_outputs(
    analysis: RankerAnalysis, tmp_path: Path
) -> None:
    case = RankerCase.build(analysis, USER)
    gate = ranker_gate(tmp_path / "ledger.db")
    result = gate.call("popularity_rank", {}, case)
    gate.close()
    count, rank = result["numbers"][:2]  # "<title> has N training users: popularity rank R ..."
    title = case.title(case.item)
    text = f"{title} is popular: {count:g} users watched it, rank {rank:g}, and 4242 others."
    known = ranker_summary(case)["numbers"] + result["numbers"]
    scores = ranker_checks(text, known, title, "popularity")
    grounded = [v for v in cited_numbers(text) if matches(v, known)]
    assert set(grounded) >= {count, rank} and 4242.0 not in grounded
    assert scores["groundedness"] == pytest.approx(len(grounded) / len(cited_numbers(text)))
    assert scores["attribution"] == 1.0  # the item and its feature named
    assert ranker_checks("Nothing here.", known, title, "popularity")["attribution"] == 0.0
