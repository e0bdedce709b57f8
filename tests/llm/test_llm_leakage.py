"""Prompts from user histories see the training period only; anything later is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recfuse.errors import LeakageError
from recfuse.llm import LLMJob, PromptRecord, PromptTemplate
from recfuse.llm.leakage import check_pairs_in_train, history_for_prompt
from recfuse.llm.sources import SourceSpec
from recfuse.split import Split


def _split() -> Split:
    frame = lambda rows: pd.DataFrame(rows, columns=["user", "item", "time"])  # noqa: E731
    train = frame([(0, 3, 1), (0, 1, 2), (0, 2, 5), (1, 0, 1), (1, 4, 2)])
    valid = frame([(0, 4, 6), (1, 2, 3)])
    test = frame([(0, 0, 7), (1, 1, 4)])
    return Split("leave_one_out", 0, 2, 5, train, valid, test)


def test_history_for_prompt_returns_training_items_in_time_order() -> None:
    split = _split()
    np.testing.assert_array_equal(history_for_prompt(split, 0), [3, 1, 2])
    np.testing.assert_array_equal(history_for_prompt(split, 0, "valid", max_items=2), [1, 2])
    np.testing.assert_array_equal(history_for_prompt(split, 1, max_items=5), [0, 4])
    with pytest.raises(LeakageError, match="training period"):
        history_for_prompt(split, 0, "test")
    with pytest.raises(LeakageError, match="not in the split"):
        history_for_prompt(split, 7)


def test_pairs_outside_train_are_refused_with_their_period() -> None:
    split = _split()
    check_pairs_in_train(split, [(0, 3), (1, 4)])
    with pytest.raises(LeakageError, match=r"user 0, item 4 \(from the valid period\)"):
        check_pairs_in_train(split, [(0, 3), (0, 4)])
    with pytest.raises(LeakageError, match=r"from the test period"):
        check_pairs_in_train(split, np.array([[1, 1]]))
    with pytest.raises(LeakageError, match="no period"):
        check_pairs_in_train(split, [(1, 3)])


def test_a_job_with_later_interactions_refuses_before_any_call(tmp_path: Path, fake_llm) -> None:
    split = _split()
    template = PromptTemplate(user="History: {history}\nWhat next?")
    fake = fake_llm()
    leaking = [PromptRecord("0", {"history": "a; b"}, ((0, 3), (0, 0)))]  # (0, 0) is test
    with pytest.raises(LeakageError, match="test period"):
        LLMJob("h", leaking, template, fake, cache=tmp_path / "c.sqlite", split=split)
    with pytest.raises(LeakageError, match="no split"):
        LLMJob("h", leaking, template, fake, cache=tmp_path / "c.sqlite")
    assert fake.prompts_seen == []
    clean = [PromptRecord("0", {"history": "a; b"}, ((0, 3), (0, 1)))]
    job = LLMJob(
        "h", clean, template, fake, cache=tmp_path / "c.sqlite", split=split, progress=False
    )
    assert job.run().completed == 1


@pytest.mark.slow
def test_user_history_source_on_a_real_dataset_uses_train_only() -> None:
    records, split = SourceSpec(
        kind="user_histories", dataset="ml-100k", limit=25, max_items=5
    ).load()
    assert split is not None and len(records) == 25
    pairs = [p for r in records for p in r.interactions]
    check_pairs_in_train(split, pairs)  # raises if any pair is from valid or test
    held_out = pd.concat([split.valid, split.test])
    later = set(zip(held_out["user"], held_out["item"], strict=True))
    assert not later & set(pairs)
    assert all(len(r.interactions) <= 5 and r.fields["history"] for r in records)
