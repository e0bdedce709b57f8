"""The DFF study end to end on a toy dataset with a tiny random encoder, on the skeleton."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recfuse.data.dataset import Dataset, build_dataset
from recfuse.features.store import FeatureStore
from recfuse.runs.study import default_folder, load_study_config, run_study
from recfuse.studies.dff.arms import Arm
from recfuse.studies.dff.study import DFFStudy


def toy_dataset() -> Dataset:
    """60 users walking through 30 items of 3 topics; a user mostly stays in one topic."""
    rng = np.random.default_rng(0)
    rows = []
    for user in range(60):
        topic = user % 3
        for step in range(int(rng.integers(4, 9))):
            item = int(topic * 10 + rng.integers(0, 10))
            rows.append((f"u{user}", f"i{item}", step))
    raw = pd.DataFrame(rows, columns=["user_id", "item_id", "time"])
    topics = ["cooking recipes", "football match", "piano music"]
    items = pd.DataFrame(
        {"title": [f"{topics[i // 10]} video number {i}" for i in range(30)]},
        index=[f"i{i}" for i in range(30)],
    )
    return build_dataset("toy", raw, items, has_timestamps=False, text_fields=("title",))


def _run(encoder: str, tmp_path: Path, lines: list[str], *sets: str) -> tuple[DFFStudy, Path]:
    config = load_study_config(
        DFFStudy,
        preset="fast",
        overrides=[
            "datasets=[toy]", f"model={encoder}", "seeds=[0, 1]", "max_users=40",
            f"output={tmp_path / 'runs'}", "train.max_seconds=null", "train.epochs=2", *sets,
        ],
    )  # fmt: skip
    study = DFFStudy(toy_dataset(), FeatureStore(tmp_path / "features"), False, lines.append)
    run_study(study, config, progress=False)
    return study, default_folder(study, config)


def test_arm_names_come_from_typed_fields() -> None:
    assert Arm("id").name == "id"
    assert Arm.on_layer("fusion", 3).name == "fusion-L3"
    assert Arm.on_layer("fusion", 3, "concat").name == "fusion-concat-L3"
    assert Arm.on_captions("replace").name == "replace-captions"
    assert Arm("dff", "layers", layers=(0, 1, 2)).name == "dff"
    with pytest.raises(dataclasses.FrozenInstanceError):
        Arm("id").kind = "dff"  # type: ignore[misc]


@pytest.mark.slow
def test_study_writes_table_verdicts_plot_and_weights(tiny_encoder: str, tmp_path: Path) -> None:
    lines: list[str] = []
    study, folder = _run(tiny_encoder, tmp_path, lines)
    report = (folder / "results.md").read_text()
    for arm in ("id", "replace-last", "replace-best", "fusion-last", "fusion-best", "dff"):
        assert f"| {arm}" in report
    assert "fusion-best (= fusion-L" in report  # an alias, resolved in memory
    results = json.loads((folder / "results.json").read_text())
    verdicts = results["verdicts"]
    # 2 seeds: nothing may "hold" or "not hold" — every verdict says it was not tested
    assert verdicts and all(v["status"] == "not tested: 2 seed(s)" for v in verdicts)
    assert "P1 (hidden states beat captions): not tested — captions not cached" in report
    weights = results["data"]["toy"]["layer_weights"]
    assert len(weights["per_seed"]) == 2
    for per_seed in weights["per_seed"]:
        assert sum(per_seed.values()) == pytest.approx(1.0, abs=1e-5)
    assert (folder / "layer_sweep_toy.png").stat().st_size > 1000
    for name in ("config.yaml", "versions.json", "splits/toy/split.json"):
        assert (folder / name).is_file()
    cells = {(c["arm"], c["seed"]): c for c in results["cells"]}
    assert cells[("replace-L2", 0)]["has_id_table"] is False
    assert cells[("fusion-L2", 0)]["has_id_table"] is True
    assert not list(folder.glob("cells/*fusion-best*"))  # no copied alias files
    # a rerun resumes: every cell is read back, nothing retrained, the same report
    n_cells = len(list((folder / "cells").glob("*.json")))
    _run(tiny_encoder, tmp_path, [])
    assert (folder / "results.md").read_text() == report
    assert len(list((folder / "cells").glob("*.json"))) == n_cells


@pytest.mark.slow
def test_a_changed_budget_retrains_instead_of_relabelling(
    tiny_encoder: str, tmp_path: Path
) -> None:
    _, first = _run(tiny_encoder, tmp_path, [], "seeds=[0]", "replace_sweep=false")
    _, second = _run(
        tiny_encoder, tmp_path, [], "seeds=[0]", "replace_sweep=false", "train.max_seconds=30"
    )
    one = json.loads((first / "results.json").read_text())["cells"]
    two = json.loads((second / "results.json").read_text())["cells"]
    assert first != second and len(one) == len(two)
    keys_one = {p.name for p in (first / "cells").glob("*.json")}
    keys_two = {p.name for p in (second / "cells").glob("*.json")}
    assert not keys_one & keys_two  # no cell of the old budget was reused
