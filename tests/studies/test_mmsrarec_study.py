"""The MMSRARec study's pieces that need no model: sampled candidates, pessimistic sampled
ranks, presets, cell keys and the budget table."""

from __future__ import annotations

import numpy as np
import pytest

from recfuse.errors import ConfigError
from recfuse.runs.study import Cell, CellResult, Finished, Results, load_study_config
from recfuse.split import make_split
from recfuse.studies.mmsrarec import (
    MMSRARecConfig,
    MMSRARecStudy,
    sampled_candidates,
    sampled_metrics,
)
from recfuse.studies.mmsrarec_report import budget_table


def test_sampled_candidates_are_unseen_distinct_and_start_with_the_target() -> None:
    from recfuse.data import load_dataset

    split = make_split(load_dataset("ml-100k"), "leave_one_out", 0)
    users = np.array([0, 5, 17, 900])
    cands = sampled_candidates(split, users, 99)
    histories = split.histories("test")
    target = split.test.set_index("user")["item"]
    for row, u in enumerate(users):
        assert cands[row, 0] == target[u]
        assert len(set(cands[row])) == 100
        assert not set(cands[row, 1:]) & set(histories[u].tolist())
    np.testing.assert_array_equal(cands, sampled_candidates(split, users, 99))  # fixed seed


def test_sampled_metrics_rank_ties_pessimistically() -> None:
    scores = np.array([[1.0, 0.0, 0.5], [1.0, 1.0, 0.0], [0.0, 2.0, 3.0], [np.nan, 0.0, 0.0]])
    out = sampled_metrics(np.arange(4), scores)
    np.testing.assert_allclose(out["s100 MRR"], [1.0, 0.5, 1 / 3, 1 / 3])
    np.testing.assert_allclose(out["s100 Hit@1"], [1, 0, 0, 0])


def test_stages_and_the_policy_round_are_not_part_of_cell_keys() -> None:
    base = MMSRARecConfig()
    other = MMSRARecConfig(stages=["lm"], policy_max_examples=10, lm_seeds=[0, 1])
    assert base.result_fields() == other.result_fields()
    assert base.result_fields() != MMSRARecConfig(lm_users=31).result_fields()


def test_smoke_preset_and_bad_keys() -> None:
    cfg = load_study_config(MMSRARecStudy, preset="smoke")
    assert cfg.item_limit == 24 and cfg.seeds == [0]
    with pytest.raises(ConfigError):
        load_study_config(MMSRARecStudy, overrides=["stages=[train]"])


def test_budget_table_states_epochs_steps_and_seconds_per_arm() -> None:
    def done(arm: str, seed: int, **info: float) -> Finished:
        return Finished(Cell(arm, seed, "ml-100k"), f"{arm}{seed}", CellResult({}, None, info))

    results = Results(
        [
            done("sasrec-id", 0, epochs_run=41, train_seconds=80.4),
            done("sasrec-id", 1, epochs_run=57, train_seconds=111.0),
            done("lm-kw", 0, steps=19, train_seconds=300.2),
        ]
    )
    lines = budget_table(results).splitlines()
    assert lines[2] == "| sasrec-id | 2 | 41–57 | – | 80–111 |"
    assert lines[3] == "| lm-kw | 1 | – | 19 | 300 |"
