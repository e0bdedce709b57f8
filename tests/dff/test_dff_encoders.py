"""Item encoders: replacement has no ID table, DFF weights sum to one, fusion trains end to end,
and the frozen model never gets a gradient."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from recfuse.data.dataset import build_dataset
from recfuse.features.extract import extract_features
from recfuse.features.store import FeatureStore
from recfuse.models import SASRec
from recfuse.models.item_encoders import (
    DFFEncoder,
    FusionEncoder,
    IdEncoder,
    ReplacementEncoder,
)
from recfuse.split import make_split


def toy_split(n_items: int = 12):
    rng = np.random.default_rng(1)
    rows = [(u, int(i), t) for u in range(30) for t, i in enumerate(rng.integers(0, n_items, 6))]
    raw = pd.DataFrame(rows, columns=["user_id", "item_id", "time"])
    items = pd.DataFrame({"title": [f"item {i}" for i in range(n_items)]}, index=range(n_items))
    data = build_dataset("toy", raw, items, has_timestamps=False, text_fields=("title",))
    return make_split(data, "leave_one_out", seed=0), data


def id_tables(module: nn.Module, n_items: int) -> list[str]:
    """Names of trainable tensors with one row per item (what an ID table is)."""
    return [
        name
        for name, p in module.named_parameters()
        if p.requires_grad and p.dim() == 2 and p.shape[0] == n_items
    ]


def test_replacement_has_no_id_table():
    feats = torch.randn(50, 24)
    enc = ReplacementEncoder(feats, dim=8)
    assert enc.has_id_table is False
    assert id_tables(enc, 50) == []
    assert not any(isinstance(m, nn.Embedding) for m in enc.modules())
    assert enc().shape == (50, 8)
    # and the others do have one
    assert id_tables(FusionEncoder(feats, 8), 50) and id_tables(IdEncoder(50, 8), 50)
    assert id_tables(DFFEncoder(torch.randn(3, 50, 24), 8), 50)


def test_features_are_buffers_not_weights():
    enc = DFFEncoder(torch.randn(3, 20, 6), dim=4, layers=[0, 2, 5])
    assert "features" in dict(enc.named_buffers())
    assert not enc.features.requires_grad
    assert all(p.data_ptr() != enc.features.data_ptr() for p in enc.parameters())
    assert "features" not in enc.state_dict()  # checkpoints hold weights, not inputs
    # standardized per dimension so every layer enters on the same scale
    assert torch.allclose(enc.features.mean(1), torch.zeros(3, 6), atol=1e-5)


def test_dff_layer_weights_sum_to_one_before_and_after_training():
    split, _ = toy_split()
    torch.manual_seed(0)
    feats = torch.randn(4, split.n_items, 10) * torch.tensor([1.0, 10.0, 100.0, 0.1])[:, None, None]
    model = SASRec(
        dim=8,
        max_len=6,
        encoder=lambda s, d: DFFEncoder(feats, d, layers=[0, 1, 2, 3]),
        epochs=3,
        patience=None,
        progress=False,
    ).fit(split)
    enc = model.net_.encoder
    weights = enc.layer_weights()
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert (weights > 0).all()
    assert not torch.allclose(weights, torch.full((4,), 0.25))  # they did learn
    report = model.report()
    assert set(report["layer_weights"]) == {"layer0", "layer1", "layer2", "layer3"}
    assert sum(report["layer_weights"].values()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mode", ["concat", "sum", "gate", "dff", "replace"])
def test_encoders_train_end_to_end_on_a_tiny_slice(mode):
    split, _ = toy_split()
    torch.manual_seed(0)
    feats = torch.randn(3, split.n_items, 10)

    def factory(s, d):
        if mode == "dff":
            return DFFEncoder(feats, d)
        if mode == "replace":
            return ReplacementEncoder(feats[0], d)
        return FusionEncoder(feats[0], d, mode=mode)

    model = SASRec(dim=8, max_len=6, encoder=factory, epochs=1, patience=None, progress=False)
    model.fit(split)  # builds the net
    enc = model.net_.encoder
    before = {n: p.detach().clone() for n, p in enc.named_parameters()}
    buffer_before = enc.features.clone()
    optimizer = torch.optim.Adam(model.net_.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    batch = next(iter(model.batches(split, rng)))
    model.net_.train()
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    changed = [n for n, p in enc.named_parameters() if not torch.equal(p, before[n])]
    assert any("adapter" in n for n in changed)  # gradients reach the feature adapter
    if mode != "replace":
        assert any(n.startswith("ids.") for n in changed)  # and the ID table
    assert torch.equal(enc.features, buffer_before)  # features never move


def test_frozen_model_gets_no_gradient(tiny_encoder, tmp_path):
    from recfuse.frozen import load_frozen

    split, data = toy_split()
    _, frozen, _ = load_frozen(tiny_encoder)
    snapshot = {n: p.detach().clone() for n, p in frozen.named_parameters()}
    assert all(not p.requires_grad for p in frozen.parameters())
    fset = extract_features(data.item_texts(), tiny_encoder, "toy", store=FeatureStore(tmp_path))
    layers = torch.as_tensor(fset.layers("mean"))
    assert not layers.requires_grad
    model = SASRec(
        dim=8,
        max_len=6,
        encoder=lambda s, d: DFFEncoder(layers, d),
        epochs=2,
        patience=None,
        progress=False,
    ).fit(split)
    assert model.net_.encoder.layer_weights().sum().item() == pytest.approx(1.0, abs=1e-6)
    for name, param in frozen.named_parameters():
        assert param.grad is None, name
        assert torch.equal(param, snapshot[name]), name
    trainable = {id(p) for p in model.net_.parameters()}
    assert not any(id(p) in trainable for p in frozen.parameters())
