"""The baselines study on the skeleton: a tiny preset on ml-100k, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recfuse.errors import ConfigError
from recfuse.runs.study import load_study_config
from recfuse.studies.baselines import BaselinesConfig, BaselinesStudy
from recfuse.studies.cli import app


def test_tiny_preset_through_the_cli(tmp_path: Path) -> None:
    args = ["baselines", "--preset", "tiny", "--out", str(tmp_path), "--set", "train.epochs=1",
            "--set", "models=[Pop, EASE, BPR]", "--set", "train.valid_users=100", "--seeds", "2"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.glob("baselines-ml-100k-*")
    cells = json.loads((folder / "results.json").read_text())["cells"]
    assert {(c["arm"], c["seed"]) for c in cells} == {
        (m, s) for m in ("Pop", "EASE", "BPR") for s in (0, 1)
    }
    ndcg = {c["arm"]: c["NDCG@10"] for c in cells if c["seed"] == 0}
    assert ndcg["EASE"] > ndcg["Pop"]  # EASE beats popularity on MovieLens in every table
    assert {c["epochs"] for c in cells if c["arm"] == "BPR"} == {1}
    text = (folder / "results.md").read_text()
    assert "| ml-100k | EASE |" in text and "(mean ± std over seeds)" in text
    assert "EASE vs Pop on ml-100k, NDCG@10" in text


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="models: .*unknown"):
        load_study_config(BaselinesStudy, overrides=["models=[Pop, Magic]"])


def test_choosing_models_changes_no_cell_key() -> None:
    pop, more = BaselinesConfig(models=["Pop"]), BaselinesConfig(models=["Pop", "BPR"])
    assert pop.result_fields() == more.result_fields()
    assert pop.result_fields() != BaselinesConfig(models=["Pop"], max_len=7).result_fields()
