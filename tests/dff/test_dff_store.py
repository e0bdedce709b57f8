"""Feature store and extraction: matrices equal a direct forward pass; resumable; reused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recfuse.errors import ConfigError
from recfuse.features import extract as extract_module
from recfuse.features.extract import extract_features
from recfuse.features.store import FeatureStore, parse_matrix_name


def direct_pooled(model_name: str, text: str) -> torch.Tensor:
    """Reference: one text alone (no padding), all layers: [L, 2, d]."""
    from recfuse.features.extract import tokenize
    from recfuse.frozen import load_frozen

    tokenizer, model, _ = load_frozen(model_name)
    ids = torch.tensor([tokenize(tokenizer, [text], 128)[0]])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    hidden = torch.stack(out.hidden_states)[:, 0]  # [L, T, d]
    return torch.stack([hidden.mean(1), hidden[:, -1]], dim=1)


@pytest.mark.parametrize("which", ["tiny_encoder", "tiny_decoder"])
def test_stored_features_equal_direct_forward(which, request, tmp_path, item_texts):
    model = request.getfixturevalue(which)
    store = FeatureStore(tmp_path)
    fset = extract_features(item_texts, model, "toy", store=store, batch_size=3, chunk_items=4)
    manifest = fset.manifest()
    assert manifest["n_layers"] == 3 and manifest["n_items"] == len(item_texts)
    for key in ("model", "weights_hash", "template", "text_hash", "poolings", "max_length"):
        assert key in manifest
    for i, text in enumerate(item_texts):
        ref = direct_pooled(model, text)
        for layer in range(3):
            assert np.allclose(fset.load(layer, "mean")[i], ref[layer, 0], atol=1e-5)
            assert np.allclose(fset.load(layer, "last")[i], ref[layer, 1], atol=1e-5)
    name = f"{manifest['model']}/layer2/last"
    assert np.array_equal(fset.load(name), fset.load(2, "last"))
    assert not fset.chunk_dir.exists()  # partial results are cleaned up when finished


def test_interrupted_extraction_resumes_with_the_missing_chunks(
    tiny_encoder, tmp_path, monkeypatch, item_texts
):
    store = FeatureStore(tmp_path)
    calls: list[int] = []
    real = extract_module.pooled_hidden_states

    def counting(model, seqs, *args):
        calls.append(len(seqs))
        return real(model, seqs, *args)

    monkeypatch.setattr(extract_module, "pooled_hidden_states", counting)
    partial = extract_features(
        item_texts, tiny_encoder, "toy", store=store, batch_size=2, chunk_items=3, max_chunks=1
    )
    assert not partial.complete
    assert len(list(partial.chunk_dir.glob("chunk*.npy"))) == 1
    assert sum(calls) == 3  # one chunk of three items
    assert store.unfinished() == [partial.folder]
    calls.clear()
    resumed = extract_features(
        item_texts, tiny_encoder, "toy", store=store, batch_size=2, chunk_items=3
    )
    assert resumed.complete
    assert sum(calls) == len(item_texts) - 3  # only the rest was computed
    fresh = extract_features(
        item_texts, tiny_encoder, "toy", store=FeatureStore(tmp_path / "fresh"), batch_size=8
    )
    for layer in range(3):
        assert np.allclose(resumed.load(layer), fresh.load(layer), atol=1e-5)
    calls.clear()
    again = extract_features(item_texts, tiny_encoder, "toy", store=store)
    assert again.folder == resumed.folder and calls == []  # never recomputed when present


def test_killed_process_leaves_chunks_a_rerun_finishes(tiny_encoder, tmp_path, item_texts):
    """A real subprocess is killed after its first chunk; the rerun computes only the rest."""
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "run.py"
    script.write_text(
        "import sys, time, torch\n"
        "torch.set_num_threads(1)\n"
        "from recfuse.features import extract as ex\n"
        "from recfuse.features.store import FeatureStore\n"
        "real = ex.pooled_hidden_states\n"
        "def slow(*a):\n"
        "    out = real(*a)\n"
        "    time.sleep(0.3)\n"
        "    return out\n"
        "ex.pooled_hidden_states = slow\n"
        f"texts = {item_texts!r}\n"
        f"ex.extract_features(texts, {tiny_encoder!r}, 'toy', store=FeatureStore({str(tmp_path / 's')!r}),"
        " batch_size=1, chunk_items=2, progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], env=dict(os.environ))
    store = FeatureStore(tmp_path / "s")
    deadline = time.time() + 60
    while time.time() < deadline:
        chunks = [p for d in store.unfinished() for p in (d / "chunks").glob("chunk*.npy")]
        if chunks:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    saved = [p for d in store.unfinished() for p in (d / "chunks").glob("chunk*.npy")]
    assert 1 <= len(saved) < 4, "the kill should land between the first and the last chunk"
    calls: list[int] = []
    real = extract_module.pooled_hidden_states
    extract_module.pooled_hidden_states = lambda m, s, *a: calls.append(len(s)) or real(m, s, *a)
    try:
        done = extract_features(
            item_texts, tiny_encoder, "toy", store=store, batch_size=1, chunk_items=2
        )
    finally:
        extract_module.pooled_hidden_states = real
    assert done.complete
    assert sum(calls) == len(item_texts) - 2 * len(saved)


def test_identity_changes_the_address(tiny_encoder, tmp_path, item_texts):
    store = FeatureStore(tmp_path)
    a = extract_features(item_texts[:3], tiny_encoder, "toy", store=store)
    b = extract_features(item_texts[:3], tiny_encoder, "toy", template="{title}", store=store)
    c = extract_features(item_texts[1:4], tiny_encoder, "toy", store=store)
    assert len({a.folder, b.folder, c.folder}) == 3
    listed = {f.folder for f in store}
    assert listed == {a.folder, b.folder, c.folder}
    assert json.loads(a.manifest_path.read_text())["text_hash"] != c.manifest()["text_hash"]


def test_bad_feature_names_are_refused():
    assert parse_matrix_name("minilm/layer3/mean") == ("minilm", 3, "mean")
    for bad in ("minilm/3/mean", "minilm/layer3/max", "minilm/layerX/mean", "x"):
        with pytest.raises(ConfigError):
            parse_matrix_name(bad)
