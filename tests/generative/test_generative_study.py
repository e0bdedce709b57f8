"""The CEMG study's table and argument checks (the study itself runs on real data, see docs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recfuse.errors import ConfigError
from recfuse.runs.study import Cell, CellResult, Finished, Results, StudyFolder, load_study_config
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


def test_summary_tests_each_claim_and_draws_the_plot(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    users = np.arange(400)
    level = {"sasrec": 0.07, "cemg": 0.05, "text": 0.05, "random": 0.02}

    def done(method: str, seed: int) -> Finished:
        ndcg = np.clip(level[method] + rng.normal(0, 0.02, len(users)), 0, 1)
        per_user = pd.DataFrame({"user": users, "NDCG@10": ndcg, "Recall@10": ndcg})
        info = {
            k: v
            for k, v in row(method, seed, 0.0).items()
            if k not in ("method", "seed", "Recall@10", "NDCG@10")
        }
        metrics = {"NDCG@10": float(ndcg.mean()), "Recall@10": float(ndcg.mean())}
        result = CellResult(metrics, per_user, info | {"epochs_run": 20 + seed})
        return Finished(Cell(method, seed, "amazon-office"), f"{method}{seed}", result)

    results = Results([done(m, s) for m in level for s in range(3)])
    summary = CEMGStudy().summarize(results, StudyFolder(tmp_path / "full"))
    said = {v.claim.split(": ", 1)[1]: v.status for v in summary.verdicts}
    assert said == {
        "cemg > text": "does not hold",  # the same level: no difference to find
        "cemg > random": "holds",
        "text > random": "holds",
        "cemg > sasrec": "does not hold",  # lower, so "greater" fails
    }
    assert (tmp_path / "full" / "cemg.png").stat().st_size > 1000
    assert "| 1 | 20–22 | 2 |" in summary.markdown  # tokenizer s, epochs over seeds, train s
