"""`recfuse tune`: a 3-trial EASE search on ml-100k, killed mid-way, resumes and writes best.yaml."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from recfuse.errors import ConfigError
from recfuse.runs import load_config
from recfuse.runs.tune import load_space, tune

ROOT = Path(__file__).resolve().parents[2]


def _cmd(folder: Path) -> list[str]:
    return [
        sys.executable, "-m", "recfuse.cli", "tune", str(ROOT / "configs" / "ease_ml100k.yaml"),
        "--space", str(ROOT / "configs" / "tune" / "ease_space.yaml"), "--trials", "3",
        "--out", str(folder), "--set", "eval.ks=[10]",
    ]  # fmt: skip


def test_tune_resumes_after_a_kill_and_writes_a_runnable_best_config(tmp_path: Path) -> None:
    import optuna

    folder = tmp_path / "tune"
    proc = subprocess.Popen(_cmd(folder), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while not (folder / "trials" / "0000.json").exists():  # kill after the first trial
        assert proc.poll() is None and time.time() < deadline, "tune ended before a trial"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (folder / "best.yaml").exists()
    storage = f"sqlite:///{folder / 'study.db'}"
    first = optuna.load_study(study_name="recfuse-tune", storage=storage)
    finished = [t for t in first.trials if t.state.is_finished()]
    assert 1 <= len(finished) < 3

    result = tune(
        ROOT / "configs" / "ease_ml100k.yaml",
        ROOT / "configs" / "tune" / "ease_space.yaml",
        3,
        folder,
        ["eval.ks=[10]"],
    )
    study = optuna.load_study(study_name="recfuse-tune", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3
    # the trial finished before the kill was kept, not recomputed
    assert complete[0].params == finished[0].params and complete[0].value == finished[0].value
    assert complete[0].params == {"model.params.l2": 500.0}  # the config's own value first
    assert result.best_value == max(t.value for t in complete)
    best = load_config(folder / "best.yaml")  # runnable: it validates as a run config
    assert best.model.params["l2"] == pytest.approx(result.best_params["model.params.l2"])
    records = sorted((folder / "trials").glob("*.json"))  # the killed trial wrote none
    assert len(records) == 3
    assert all('"test"' not in r.read_text() for r in records)  # validation only


def test_a_bad_space_names_the_key(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"model.params.l2": {"type": "float", "low": 1.0}}))
    with pytest.raises(ConfigError, match="model.params.l2: float needs low and high"):
        load_space(space)
