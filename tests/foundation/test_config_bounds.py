"""Run configs are range-checked up front: every bad value is one ConfigError naming its key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recfuse.errors import ConfigError
from recfuse.runs.config import load_config
from recfuse.runs.folder import RunFolder, clean_stale

BASE = ["data.name=ml-100k", "model.name=pop"]

BAD = [
    ("train.epochs=0", "train.epochs"),
    ("train.epochs=-3", "train.epochs"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.lr=0", "train.lr"),
    ("train.lr=-1e-3", "train.lr"),
    ("train.weight_decay=-1", "train.weight_decay"),
    ("train.patience=0", "train.patience"),
    ("train.valid_users=0", "train.valid_users"),
    ("train.max_seconds=0", "train.max_seconds"),
    ("train.valid_metric=Recall@x", "train.valid_metric"),
    ("train.valid_metric=AUC", "train.valid_metric"),
    ("eval.ks=[]", "eval.ks"),
    ("eval.ks=[0, 10]", "eval.ks"),
    ("eval.ks=[10, 10]", "eval.ks"),
    ("eval.batch_users=0", "eval.batch_users"),
    ("eval.sampled_negatives=0", "eval.sampled_negatives"),
    ("eval.max_users=0", "eval.max_users"),
    ("name=../../x", "name"),
    ("name=a/b", "name"),
    ("name=", "name"),
    ("name=.hidden", "name"),
    ("seed=-1", "seed"),
    ("threads=0", "threads"),
    ("split.test_frac=2.0", "split.test_frac"),
    ("split.valid_frac=0", "split.valid_frac"),
    ("data.k_core=0", "data.k_core"),
]


@pytest.mark.parametrize(("override", "key"), BAD)
def test_out_of_range_values_name_their_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match="config: " + re.escape(key) + "[.:]"):
        load_config(None, [*BASE, override])


def test_valid_values_pass_and_ks_are_sorted() -> None:
    config = load_config(None, [*BASE, "eval.ks=[20, 5]", "train.valid_metric=Recall@20"])
    assert config.eval.ks == [5, 20]
    assert config.train.valid_metric == "Recall@20"


def test_unreadable_yaml_files_are_config_errors(tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"data: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: {name: ml-100k\nmodel: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml:\d+: invalid YAML"):
        load_config(broken)


def test_too_many_sampled_negatives_fail_before_training(tmp_path: Path) -> None:
    from recfuse.runs import run_config

    config = load_config(None, [*BASE, f"output={tmp_path}", "eval.sampled_negatives=1000000"])
    with pytest.raises(ConfigError, match="eval.sampled_negatives: 1000000 negatives"):
        run_config(config)
    assert not list(tmp_path.iterdir())


def test_eval_ks_without_10_runs(tmp_path: Path) -> None:
    from recfuse.runs import run_config

    folder = run_config(load_config(None, [*BASE, f"output={tmp_path}", "eval.ks=[5]"]))
    assert (folder / "metrics.json").is_file()
    assert "NDCG@5" in (folder / "metrics.md").read_text()


def test_valid_metric_other_than_ndcg10_selects_on_it(tmp_path: Path) -> None:
    from recfuse.runs import run_config

    sets = [
        f"output={tmp_path}",
        "data.name=ml-100k",
        "model.name=bpr",
        "model.params={dim: 8}",
        "train.epochs=1",
        "train.valid_metric=Recall@5",
        "eval.ks=[5]",
        "eval.max_users=50",
    ]
    folder = run_config(load_config(None, sets))
    history = (folder / "training_history.json").read_text()
    assert "Recall@5" in history


def test_a_killed_run_leaves_no_tmp_folder_at_the_next_start(tmp_path: Path) -> None:
    script = (
        "import os, signal, sys\n"
        "from recfuse.runs.folder import RunFolder\n"
        "with RunFolder(sys.argv[1], 'killed') as run:\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env)
    assert proc.returncode == -9
    assert len(list(tmp_path.glob(".tmp-killed-*"))) == 1  # the kill left it
    live = tmp_path / f".tmp-other-20260101-000000-{os.getppid()}"
    live.mkdir()  # a running owner's folder is kept
    with RunFolder(tmp_path, "next") as run:
        run.write_text("x.txt", "x")
    assert not list(tmp_path.glob(".tmp-killed-*"))
    assert live.is_dir()


def test_clean_stale_removes_a_folder_whose_pid_was_reused(tmp_path: Path) -> None:
    stale = tmp_path / ".tmp-old-20200101-000000-1"  # PID 1 is alive
    stale.mkdir()
    os.utime(stale, (time.time() - 10**9, time.time() - 10**9))  # written long before PID 1 began
    assert clean_stale(tmp_path) == [stale]
