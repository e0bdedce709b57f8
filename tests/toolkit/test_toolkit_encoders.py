"""Encoders named in run configs: resolved through the FeatureStore, saved and reloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recfuse.errors import ConfigError, DataError
from recfuse.models.encoder_spec import FeatureEncoderFactory
from recfuse.models.item_encoders import DFFEncoder
from recfuse.runs import build_model, load_config, load_run

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_validate(name: str) -> None:
    config = load_config(CONFIGS / name)
    build_model(config)  # checks the model and encoder sections without touching data


@pytest.mark.parametrize(
    ("encoder", "message"),
    [
        ("{kind: fusion, features: [minilm/layer1/mean, minilm/layer2/mean]}", "takes one feature"),
        ("{kind: dff, features: minilm/layer1/mean}", "two or more features"),
        ("{kind: replace, features: minilm/layer1/max}", "MODEL/layerN/mean|last"),
        (
            "{kind: dff, features: [minilm/layer1/mean, minilm/layer2/last]}",
            "one model and pooling",
        ),
    ],
)
def test_bad_encoder_sections_name_the_key(encoder: str, message: str) -> None:
    config = load_config(
        None, ["data.name=ml-100k", "model.name=sasrec", f"model.encoder={encoder}"]
    )
    with pytest.raises(ConfigError, match=message):
        build_model(config)
    ease = load_config(None, ["data.name=ml-100k", "model.name=ease", "model.encoder={kind: id}"])
    with pytest.raises(ConfigError, match="only sequential models"):
        build_model(ease)


@pytest.mark.slow
def test_dff_from_a_config_trains_saves_and_reloads(run_maker: Any, tmp_path: Path) -> None:
    layers = "[minilm/layer0/mean, minilm/layer3/mean, minilm/layer6/mean]"
    folder = run_maker(
        tmp_path, "dff", "data.name=ml-100k", "model.name=sasrec",
        "model.params={dim: 16, max_len: 20}", f"model.encoder={{kind: dff, features: {layers}}}",
        "train.epochs=1", "eval.ks=[10]",
    )  # fmt: skip
    model = load_run(folder)
    encoder = model.net_.encoder
    assert isinstance(encoder, DFFEncoder) and encoder.layers == [0, 3, 6]
    split = model.split_
    users = np.arange(40)
    hist = [split.histories("test")[u] for u in users]
    again = load_run(folder)
    np.testing.assert_array_equal(model.score(users, hist), again.score(users, hist))
    # the reloaded encoder reads the stored matrices its model.json names (by full identity);
    # features that are not in the store are a clear error (the shared store is left alone)
    factory = model.encoder_factory
    assert isinstance(factory, FeatureEncoderFactory) and factory.feature_set().complete
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    meta = json.loads((copy / "model" / "model.json").read_text())
    meta["params"]["encoder"]["identity"]["text_hash"] = "0" * 16  # other item texts
    (copy / "model" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="recfuse features extract --model minilm"):
        load_run(copy)
