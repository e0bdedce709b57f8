"""The I2I study end to end on its tiny preset (ml-100k, ItemCF, one seed) through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner


def test_i2i_study_tiny_through_cli(tmp_path: Path) -> None:
    from recfuse.studies.cli import app

    args = ["i2i", "--preset", "tiny", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = next(tmp_path.glob("i2i-*"))
    data = json.loads((folder / "results.json").read_text())
    arms = {c["arm"] for c in data["cells"]}
    assert arms == {f"itemcf:{a}" for a in
                    ("original", "gen", "rand-gen", "disc", "gen+disc", "rand-drop", "loss-prune",
                     "disc-weight")}  # fmt: skip
    drop = next(c for c in data["cells"] if c["arm"] == "itemcf:rand-drop")
    disc = next(c for c in data["cells"] if c["arm"] == "itemcf:disc")
    assert drop["fraction"] == disc["fraction"] and drop["edges"] == disc["edges"]
    gen = next(c for c in data["cells"] if c["arm"] == "itemcf:gen")
    assert gen["synthetic"] > 0 and disc["synthetic"] == 0
    weight = next(c for c in data["cells"] if c["arm"] == "itemcf:disc-weight")
    original = next(c for c in data["cells"] if c["arm"] == "itemcf:original")
    assert weight["edges"] == original["edges"] > disc["edges"]  # kept, at a lower weight
    statuses = {v["status"] for v in data["verdicts"]}
    assert statuses == {"not tested: 1 seed(s)"}  # one seed never makes a claim hold
    assert (folder / "ledgers").is_dir() and list(folder.glob("gain_by_popularity_*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in (folder / "cells").glob("*.json")}
    again = CliRunner().invoke(app, args)  # resumed: every cell read back, none recomputed
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in (folder / "cells").glob("*.json")} == stamps


def test_bad_config_names_the_field() -> None:
    import pytest

    from recfuse.errors import ConfigError
    from recfuse.runs.study import load_study_config
    from recfuse.studies.i2i.study import I2IStudy

    for override, field in (("models=[itemcf,foo]", "models"), ("arms=[gen,bar]", "arms"),
                            ("drop_fractions=[0.7]", "drop_fractions"), ("per_item=21", "per_item")):  # fmt: skip
        with pytest.raises(ConfigError, match=field):
            load_study_config(I2IStudy, overrides=[override])


def test_a_user_sample_keeps_its_items_rows_in_the_full_catalogue() -> None:
    # The study reads a sample's item vectors from the full catalogue's features by source_item.
    from recfuse.data import load_dataset
    from recfuse.data.subsample import load_sample
    from recfuse.runs.study import load_study_config
    from recfuse.studies.i2i.study import I2IStudy

    full, part = load_dataset("ml-100k"), load_sample("ml-100k", 100)
    assert part.n_users == 100 and part.n_items < full.n_items
    texts = full.item_texts()
    assert part.item_texts() == [texts[i] for i in part.items["source_item"]]
    assert load_sample("ml-100k", None).n_users == full.n_users
    assert load_study_config(I2IStudy, overrides=["max_users=100"]).max_users == 100


def test_a_cell_evaluates_the_fit_of_the_fraction_chosen_on_validation() -> None:
    import numpy as np

    from recfuse.augment.generator import real_edges
    from recfuse.data import load_dataset
    from recfuse.evaluation import Evaluator
    from recfuse.models.i2i import ItemCF
    from recfuse.split import make_split
    from recfuse.studies.i2i.data import RefinedData
    from recfuse.studies.i2i.evaluate import run_i2i_cell

    split = make_split(load_dataset("ml-100k"), "leave_one_out", seed=0)
    real = real_edges(split)
    refined = RefinedData(split)
    keep = np.random.default_rng(0).random(len(real))
    for fraction in (0.1, 0.5):  # dropping half at random is worse on validation
        refined.edges[("disc", fraction)] = real[keep >= fraction].reset_index(drop=True)
    result = run_i2i_cell(ItemCF(), refined, "disc", [0.1, 0.5])
    assert result.info["fraction"] == 0.1  # the last fit was 0.5; the kept one is evaluated
    evaluator = Evaluator(split, ks=(10,))
    fresh = ItemCF().fit(split, edges=refined.get("disc", 0.1))
    expected = evaluator.evaluate(fresh, "test").metrics["Recall@10"]
    assert result.metrics["Recall@10"] == expected
