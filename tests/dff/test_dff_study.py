"""The DFF study end to end on a toy dataset with a tiny random encoder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recfuse.data.dataset import build_dataset
from recfuse.features.store import FeatureStore
from recfuse.studies.dff import run_study


def toy_dataset() -> object:
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


@pytest.mark.slow
def test_study_writes_table_verdicts_plot_and_weights(tiny_encoder, tmp_path):
    lines: list[str] = []
    folder = run_study(
        "toy",
        tiny_encoder,
        seeds=2,
        preset="fast",
        max_users=40,
        out=str(tmp_path / "runs"),
        progress=False,
        echo=lines.append,
        dataset_obj=toy_dataset(),
        store=FeatureStore(tmp_path / "features"),
    )
    report = (folder / "results.md").read_text()
    for arm in ("id", "replace-last", "replace-best", "fusion-last", "fusion-best", "dff"):
        assert f"| {arm}" in report
    verdicts = json.loads((folder / "verdicts.json").read_text())
    assert len(verdicts) == 4
    assert verdicts[0].endswith("not tested — captions not cached")
    for line in verdicts[1:3]:
        assert ("holds" in line) or ("does not hold" in line)
    weights = json.loads((folder / "dff_layer_weights.json").read_text())
    for per_seed in weights["per_seed"]:
        assert sum(per_seed.values()) == pytest.approx(1.0, abs=1e-5)
    assert (folder / "layer_sweep.png").stat().st_size > 1000
    for name in ("config.json", "versions.json", "split/split.json"):
        assert (folder / name).is_file()
    replace = json.loads((folder / "arms" / "replace-L2-seed0.json").read_text())
    assert replace["has_id_table"] is False
    fusion = json.loads((folder / "arms" / "fusion-L2-seed0.json").read_text())
    assert fusion["has_id_table"] is True
    assert any("skipping the caption arms" in line for line in lines)
    # a rerun resumes: every arm is read back, nothing retrained
    again = run_study(
        "toy",
        tiny_encoder,
        seeds=2,
        preset="fast",
        max_users=40,
        out=str(tmp_path / "runs"),
        progress=False,
        echo=lambda _: None,
        dataset_obj=toy_dataset(),
        store=FeatureStore(tmp_path / "features"),
    )
    assert (again / "results.md").read_text() == report
