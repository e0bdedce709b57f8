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
