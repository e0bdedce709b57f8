"""The real frozen models: stored hidden states equal a direct forward pass of the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recfuse.features.extract import extract_features, tokenize
from recfuse.features.store import FeatureStore
from recfuse.frozen import load_frozen


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["minilm", "smollm2"])
def test_store_equals_direct_forward_of_the_frozen_model(model_name, tmp_path, item_texts):
    texts = item_texts[:5]  # includes an empty text and an injection attempt
    fset = extract_features(
        texts, model_name, "sample", store=FeatureStore(tmp_path), batch_size=5, progress=False
    )
    tokenizer, model, source = load_frozen(model_name)
    manifest = fset.manifest()
    assert manifest["weights_hash"] == source.weights_hash()
    expected_layers = {"minilm": 7, "smollm2": 31}[model_name]
    assert manifest["n_layers"] == expected_layers
    for i, text in enumerate(texts):
        ids = torch.tensor([tokenize(tokenizer, [text], 128)[0]])
        with torch.no_grad():
            hidden = torch.stack(model(input_ids=ids, output_hidden_states=True).hidden_states)
        hidden = hidden[:, 0]  # [L, T, d], one item alone, no padding
        for layer in range(expected_layers):
            ref_mean, ref_last = hidden[layer].mean(0).numpy(), hidden[layer, -1].numpy()
            scale = max(1.0, float(np.abs(ref_mean).max()))
            got_mean, got_last = fset.load(layer, "mean")[i], fset.load(layer, "last")[i]
            assert np.allclose(got_mean, ref_mean, rtol=1e-4, atol=1e-4 * scale), (i, layer)
            scale = max(1.0, float(np.abs(ref_last).max()))
            assert np.allclose(got_last, ref_last, rtol=1e-4, atol=1e-4 * scale), (i, layer)


@pytest.mark.filterwarnings("ignore:extract_features. dtype bfloat16")  # an AVX2-only CPU
def test_bfloat16_and_token_batches_stay_close_to_float32(tiny_encoder, tmp_path, item_texts):
    run = dict(store=FeatureStore(tmp_path), progress=False)
    ref = extract_features(item_texts, tiny_encoder, "sample", batch_size=2, **run)
    fast = extract_features(
        item_texts, tiny_encoder, "sample", dtype="bfloat16", batch_tokens=64, **run
    )
    assert fast.folder != ref.folder  # a bfloat16 set never stands in for a float32 one
    for layer in range(ref.n_layers):
        x, y = ref.load(layer, "mean"), fast.load(layer, "mean")
        cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
        assert cos.min() > 0.99, layer
    # token batching alone changes only the padding, which the pooling ignores
    tokens = extract_features(item_texts, tiny_encoder, "other", batch_tokens=64, **run)
    assert np.allclose(tokens.load(1, "last"), ref.load(1, "last"), atol=1e-5)


def test_token_budget_batches() -> None:
    from recfuse.errors import ConfigError
    from recfuse.features.extract import _batches

    seqs = [[1] * n for n in (1, 1, 2, 2, 3, 8)]
    assert [len(b) for b in _batches(seqs, 32, 6)] == [3, 2, 1]
    assert [len(b) for b in _batches(seqs, 4, None)] == [4, 2]
    with pytest.raises(ConfigError, match="dtype"):
        extract_features(["a"], "minilm", dtype="float16")


def test_bfloat16_without_native_support_warns(tiny_encoder, tmp_path, item_texts, monkeypatch):
    from recfuse.features import extract as extract_module

    monkeypatch.setattr(extract_module, "cpu_has_bf16", lambda: False)
    with pytest.warns(UserWarning, match="AVX512-BF16"):
        extract_features(
            item_texts[:2], tiny_encoder, "s", store=FeatureStore(tmp_path), dtype="bfloat16",
            progress=False,
        )  # fmt: skip


def test_cpu_bf16_detection_reads_the_cpu_flags(tmp_path):
    from recfuse.features.extract import cpu_has_bf16

    (tmp_path / "avx2").write_text("flags\t\t: fpu sse2 avx2 fma\n")
    (tmp_path / "spr").write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    assert cpu_has_bf16(tmp_path / "avx2") is False
    assert cpu_has_bf16(tmp_path / "spr") is True
    assert cpu_has_bf16(tmp_path / "missing") is None
