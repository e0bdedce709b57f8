"""The DFF study's arms: typed item-encoder configurations and the models they train.

An arm is a frozen dataclass; its name is derived from its fields (never parsed back), and its
fields are part of the cell's key, so two arms that differ in anything never share a result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from recfuse.models.item_encoders import (
    DFFEncoder,
    FusionEncoder,
    IdEncoder,
    ItemEncoder,
    ReplacementEncoder,
)
from recfuse.models.sequential import SequentialRecommender
from recfuse.models.training import TrainConfig
from recfuse.split import Split
from recfuse.studies.dff.features import StudyFeatures

ArmKind = Literal["id", "replace", "fusion", "dff"]
Source = Literal["", "layer", "captions", "layers"]
FusionMode = Literal["gate", "concat", "sum"]


@dataclass(frozen=True)
class Arm:
    """One configuration of the item encoder.

    ``kind``: id (ID embeddings only), replace (content replaces the IDs), fusion (content fused
    with the IDs by ``mode``), dff (learned mixture of ``layers``). ``source``: the content of
    replace/fusion — one ``layer`` or the ``captions``.
    """

    kind: ArmKind
    source: Source = ""
    layer: int | None = None
    mode: FusionMode = "gate"
    layers: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        if self.kind in ("id", "dff"):
            return self.kind
        what = "captions" if self.source == "captions" else f"L{self.layer}"
        mode = "" if self.mode == "gate" else f"-{self.mode}"
        return f"{self.kind}{mode}-{what}"

    @classmethod
    def on_layer(cls, kind: ArmKind, layer: int, mode: FusionMode = "gate") -> Arm:
        return cls(kind, "layer", layer, mode)

    @classmethod
    def on_captions(cls, kind: ArmKind) -> Arm:
        return cls(kind, "captions")


def content(arm: Arm, feats: StudyFeatures) -> np.ndarray:
    """The content matrix [n_items, d] a replace/fusion arm reads."""
    if arm.source == "captions":
        if feats.captions is None:
            raise ValueError(f"{arm.name}: the study has no caption features")
        return feats.captions
    if arm.layer is None:
        raise ValueError(f"{arm.name}: a layer arm needs a layer")
    return feats.layers[arm.layer]


def encoder_factory(arm: Arm, feats: StudyFeatures) -> Callable[[Split, int], ItemEncoder]:
    """The ``(split, dim) -> ItemEncoder`` factory of one arm."""

    def build(split: Split, dim: int) -> ItemEncoder:
        if arm.kind == "id":
            return IdEncoder(split.n_items, dim)
        if arm.kind == "replace":
            return ReplacementEncoder(content(arm, feats), dim)
        if arm.kind == "fusion":
            return FusionEncoder(content(arm, feats), dim, mode=arm.mode)
        layers = list(arm.layers)
        return DFFEncoder(feats.layers[layers], dim, layers=layers)

    return build


def make_model(
    backbone: Literal["sasrec", "gru4rec"],
    dim: int,
    max_len: int,
    train: TrainConfig,
    factory: Callable[[Split, int], ItemEncoder],
) -> SequentialRecommender:
    """The backbone with the arm's encoder and the study's budget (``train.device`` included)."""
    from recfuse.models import GRU4Rec, SASRec

    cls = SASRec if backbone == "sasrec" else GRU4Rec
    return cls(dim=dim, max_len=max_len, encoder=factory, train=train)
