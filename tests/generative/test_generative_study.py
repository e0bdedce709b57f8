"""The CEMG study's table and argument checks (the study itself runs on real data, see docs)."""

from __future__ import annotations

import pytest

from recfuse.errors import ConfigError
from recfuse.runs.study import Cell, load_study_config
from recfuse.studies.cemg import CEMGStudy, results_table


def row(method: str, seed: int, recall: float, epochs: int = 12) -> dict:
    out = {
        "method": method,
        "seed": seed,
        "Recall@10": recall,
        "NDCG@10": recall / 2,
        "tokenizer_seconds": 1.0,
        "epochs_run": epochs,
        "train_seconds": 2.0,
        "inference_ms_per_user": 0.5,
    }
    if method != "sasrec":
        out["tokenizer"] = {"collision_rate": 0.1, "usage": [1.0, 0.5, 0.25]}
    return out


def test_results_table_reports_mean_and_std_over_seeds() -> None:
    rows = [row("sasrec", 0, 0.10, 30), row("sasrec", 1, 0.12, 41), row("cemg", 0, 0.05)]
    table = results_table(rows, "amazon-office", "cpu")
    assert "| SASRec (full CE) | 2 | 0.1100 ± 0.0141 |" in table
    assert "| 1 | 30–41 | 2 |" in table  # tokenizer s, epochs run (range over seeds), train s
    assert "1.00 / 0.50 / 0.25" in table
    assert "TIGER on Beauty (reported)* | – | 0.0648 | 0.0384" in table
    assert "random codes" not in table  # methods without rows are left out


def test_unknown_preset_and_method_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown preset"):
        load_study_config(CEMGStudy, preset="huge")
    with pytest.raises(ConfigError, match="methods"):
        load_study_config(CEMGStudy, overrides=["methods=[cemg, magic]"])


def test_presets_keep_the_old_budgets() -> None:
    smoke = load_study_config(CEMGStudy, preset="smoke")
    assert (smoke.tokenizer_steps, smoke.train.epochs, smoke.train.max_seconds) == (40, 1, 15)
    full = load_study_config(CEMGStudy, preset="full")
    assert full.train.max_seconds is None and full.train.epochs == 300
    assert full.train.valid_users == 2000  # a beam search per epoch: a fixed validation subset


def test_choosing_methods_changes_no_cell_key() -> None:
    cell = Cell("text", 0, "amazon-scientific")
    study = CEMGStudy()
    study.keys = {"amazon-scientific": {"split": "s", "features": "f"}}
    one = load_study_config(CEMGStudy, overrides=["methods=[text]"])
    every = load_study_config(CEMGStudy)
    assert study.cell_key(cell, one) == study.cell_key(cell, every)
    levels = every.model_copy(update={"levels": 4})
    assert study.cell_key(cell, every) != study.cell_key(cell, levels)
