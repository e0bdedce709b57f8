"""`recfuse.features.embed`: the one text-to-vector path, cached per text by `text_hash`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import recfuse.features.embed as embed_module
from recfuse.features.embed import embed, recipe_folder
from recfuse.features.extract import extract_features
from recfuse.features.store import FeatureStore, text_hash, texts_hash

TEXTS = [
    "A dragon guards a mountain of gold.",
    "A cookbook of Sicilian pasta.",
    "Quantum physics for beginners.",
]


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("a cached text must not reach the model")


@pytest.mark.slow
def test_cache_hit_makes_no_model_call(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path))
    first = embed(TEXTS)
    assert first.shape == (3, 384) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    shards = list(recipe_folder("minilm", -1, "mean", 256, True).glob("*.npz"))
    assert len(shards) == 1
    with monkeypatch.context() as m:
        m.setattr(embed_module, "_encode", _refuse)
        m.setattr(embed_module, "load_frozen", _refuse)
        again = embed([TEXTS[2], TEXTS[0], TEXTS[2]])  # another slice, a duplicate: same rows
        assert np.array_equal(again, first[[2, 0, 2]])
        embed_module._MEMORY.clear()  # a fresh process: the vectors come from disk
        assert np.array_equal(embed(TEXTS), first)
    seen: list[list[str]] = []
    encode = embed_module._encode

    def recording(texts: list[str], *args: object) -> np.ndarray:
        seen.append(list(texts))
        return encode(texts, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(embed_module, "_encode", recording)
    mixed = embed([TEXTS[1], "A dragon hoards treasure under a mountain."])
    assert seen == [["A dragon hoards treasure under a mountain."]]  # only the new text
    assert np.array_equal(mixed[0], first[1])
    assert float(mixed[1] @ first[0]) > float(mixed[1] @ first[1])  # related texts are closer
    assert len(list(shards[0].parent.glob("*.npz"))) == 2


@pytest.mark.slow
def test_same_vectors_as_the_layer_extraction(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    torch.set_num_threads(1)
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path))
    fset = extract_features(TEXTS, "minilm", max_length=64, progress=False)
    for layer, pooling in ((3, "last"), (6, "mean")):
        ours = embed(TEXTS, "minilm", layer, pooling, normalize=False, max_length=64)
        assert np.allclose(ours, fset.load(layer, pooling), atol=1e-5), (layer, pooling)
    uncached = embed(TEXTS, use_cache=False, batch_size=1)  # other batching, same vectors
    assert np.allclose(uncached, embed(TEXTS), atol=1e-5)
    assert not np.allclose(embed(TEXTS, layer=0), embed(TEXTS))  # a recipe of its own
    assert FeatureStore(tmp_path / "features").unfinished() == []  # the text cache is no set


def test_text_hash_is_per_text_and_texts_hash_per_list() -> None:
    assert text_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert texts_hash(["ab", "c"]) != texts_hash(["a", "bc"])  # length-prefixed
    assert len(texts_hash(TEXTS)) == 16


def test_bad_arguments_name_what_is_wrong() -> None:
    from recfuse.errors import ConfigError

    with pytest.raises(ConfigError, match="no texts"):
        embed([])
    with pytest.raises(ConfigError, match="pooling"):
        embed(["x"], pooling="max")
