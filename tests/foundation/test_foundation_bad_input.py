"""Bad input: one-line errors that name the problem, exit code 2, no partial output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recfuse.data import load_dataset, load_interactions_file
from recfuse.data.locate import CHECKOUT_ROOT
from recfuse.data.readers import read_json
from recfuse.errors import ConfigError, DataError
from recfuse.runs import load_config

SHARED = CHECKOUT_ROOT.parent / "shared" / "data"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recfuse.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )


def test_truncated_json_names_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "amazon-office"
    folder.mkdir()
    text = (SHARED / "amazon-office" / "Office.inter.json").read_text()
    (folder / "Office.inter.json").write_text(text[: len(text) // 2])
    shutil.copy(SHARED / "amazon-office" / "Office.item.json", folder)
    # the catalog's SHA-256 refuses half a file before any reader sees it...
    with pytest.raises(DataError, match=r"Office\.inter\.json: SHA-256 \w+ does not match"):
        load_dataset("amazon-office", data_dir=tmp_path)
    # ...and the reader itself names the line and column where the JSON stops
    with pytest.raises(DataError, match=r"Office\.inter\.json:\d+:\d+: invalid JSON"):
        read_json(folder / "Office.inter.json")


def test_truncated_file_via_cli_exits_2_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in ("ml-100k.item", "ml-100k.user"):
        shutil.copy(SHARED / "ml-100k" / name, folder)
    (folder / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t3\t88\n4\t5\n"
    )
    result = _cli("data", "describe", "ml-100k", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ml-100k.inter" in lines[0]


def test_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "inter.csv"
    path.write_text("user_id,item\nu1,i1\n")
    with pytest.raises(DataError, match=r"inter\.csv: missing column 'item_id'"):
        load_interactions_file(path, time_col=None)


def test_empty_dataset(tmp_path: Path) -> None:
    path = tmp_path / "inter.csv"
    path.write_text("user_id,item_id,timestamp\n")
    with pytest.raises(DataError, match="no interactions"):
        load_interactions_file(path)
    (tmp_path / "blank.tsv").write_text("")
    with pytest.raises(DataError, match="empty file"):
        load_interactions_file(tmp_path / "blank.tsv")


def test_unknown_dataset_name() -> None:
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_missing_files_say_where_to_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path / "cache"))
    from recfuse.data.locate import locate

    with pytest.raises(DataError, match="not found; put them into one of"):
        locate("no-such-dataset", ("books.jsonl",), data_dir=tmp_path / "nowhere", download=False)


def test_unknown_config_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {name: ml-100k}\nmodel: {name: pop}\ntrian: {epochs: 3}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: trian: unknown key"):
        load_config(cfg)


def test_cli_config_error_exit_code_and_no_output(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data: {{name: ml-100k}}\nmodel: {{name: pop, paramz: 1}}\noutput: {tmp_path / 'runs'}\n"
    )
    result = _cli("run", str(cfg), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {cfg}: model.paramz: unknown key"
    assert not (tmp_path / "runs").exists()


def test_failed_run_leaves_no_partial_folder(tmp_path: Path) -> None:
    from recfuse.runs import run_config

    config = load_config(
        None,
        [
            f"output={tmp_path / 'runs'}",
            "data.name=ml-100k",
            "model.name=itemknn",
            "model.params={k: 5, nope: 1}",
        ],
    )
    with pytest.raises(ConfigError, match="model.params.nope"):
        run_config(config)
    # the failure comes before the run folder exists: nothing may have been made at all
    assert not (tmp_path / "runs").exists()


def test_failure_inside_the_run_folder_leaves_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An exception raised while the run folder exists (during training) removes it."""
    from recfuse.models.classic import Pop
    from recfuse.runs import run_config

    def broken_fit(self, split):  # type: ignore[no-untyped-def]
        raise RuntimeError("fit failed")

    monkeypatch.setattr(Pop, "fit", broken_fit)
    config = load_config(
        None, [f"output={tmp_path / 'runs'}", "data.name=ml-100k", "model.name=pop"]
    )
    with pytest.raises(RuntimeError, match="fit failed"):
        run_config(config)
    assert (tmp_path / "runs").is_dir()  # the folder existed when the failure came
    assert list((tmp_path / "runs").iterdir()) == []


def test_user_file_round_trip(tmp_path: Path) -> None:
    (tmp_path / "inter.tsv").write_text("u\ti\tt\nA\tx\t2\nA\ty\t1\nB\tx\t5\n")
    (tmp_path / "items.csv").write_text("i,name\nx,Ex\ny,Why\nz,Zed\n")
    ds = load_interactions_file(
        tmp_path / "inter.tsv",
        user_col="u",
        item_col="i",
        time_col="t",
        items_path=tmp_path / "items.csv",
        text_fields=("name",),
    )
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 3, 3)
    first_user = ds.interactions[ds.interactions["user"] == 0]
    assert ds.items["item_id"].to_numpy()[first_user["item"].to_numpy()].tolist() == ["y", "x"]
    assert ds.item_texts() == ["Ex", "Why", "Zed"]
    assert json.loads(json.dumps(ds.stats()))["users"] == 2
