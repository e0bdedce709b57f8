"""Item encoders named in a config: ``model.encoder: {kind, features, mode}``.

    encoder:
      kind: dff                     # id | replace | fusion | dff
      features: [minilm/layer0/mean, minilm/layer3/mean, minilm/layer6/mean]
      mode: gate                    # fusion only: concat | sum | gate

`FeatureEncoderFactory.resolve` finds the named matrices in the `FeatureStore` (extracting them
with a progress bar when missing) and becomes the ``(split, dim) -> ItemEncoder`` factory a
`SequentialRecommender` takes. It remembers which stored feature set it read (the set's full
identity: frozen model, weights hash, text hash), so a saved model reloads the same matrices
without the dataset's texts, and refuses when they are gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recfuse.errors import ConfigError, DataError
from recfuse.features.store import FeatureSet, FeatureStore, parse_matrix_name
from recfuse.models.item_encoders import (
    FUSION_MODES,
    DFFEncoder,
    FusionEncoder,
    IdEncoder,
    ItemEncoder,
    ReplacementEncoder,
)

if TYPE_CHECKING:
    from recfuse.data.dataset import Dataset
    from recfuse.split import Split

ENCODER_KINDS = ("id", "replace", "fusion", "dff")


def check_spec(kind: str, features: list[str], mode: str) -> None:
    """`ConfigError` (naming ``model.encoder.*``) unless kind, features and mode fit together."""
    where = "model.encoder"
    if kind not in ENCODER_KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {', '.join(ENCODER_KINDS)}")
    if mode not in FUSION_MODES:
        raise ConfigError(f"{where}.mode: {mode!r} is not one of {', '.join(FUSION_MODES)}")
    parsed = [parse_matrix_name(f) for f in features]
    wanted = {"id": (0, 0), "replace": (1, 1), "fusion": (1, 1), "dff": (2, 10_000)}[kind]
    if not wanted[0] <= len(features) <= wanted[1]:
        count = {"id": "no features", "replace": "one feature", "fusion": "one feature"}
        raise ConfigError(
            f"{where}.features: kind {kind!r} takes {count.get(kind, 'two or more features')}, "
            f"got {len(features)}"
        )
    if kind == "dff" and len({(m, p) for m, _, p in parsed}) != 1:
        raise ConfigError(f"{where}.features: DFF layers must come from one model and pooling")


@dataclass
class FeatureEncoderFactory:
    """A picklable-free, JSON-describable ``(split, dim) -> ItemEncoder`` factory.

    Attributes:
        kind, features, mode: the config's encoder section.
        source: where the matrices live: ``{"dataset": label, "identity": {...}}`` (empty for
            ``id``); ``FeatureStore().feature_set(label, identity["model"], identity)``.
    """

    kind: str
    features: list[str]
    mode: str = "gate"
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        kind: str,
        features: list[str] | str | None,
        mode: str,
        dataset: Dataset,
        store: FeatureStore | None = None,
        progress: bool = True,
    ) -> FeatureEncoderFactory:
        """Validate the spec and make sure its matrices exist for ``dataset`` (extract if not)."""
        from recfuse.features.extract import extract_features, extraction_identity

        names = [features] if isinstance(features, str) else list(features or [])
        check_spec(kind, names, mode)
        if kind == "id":
            return cls(kind, [], mode)
        model = parse_matrix_name(names[0])[0]
        if len({parse_matrix_name(n)[0] for n in names}) != 1:
            raise ConfigError("model.encoder.features: all features must come from one model")
        texts = dataset.item_texts()
        fset = extract_features(texts, model, dataset.name, None, store, progress=progress)
        for name in names:
            fset.load(name)  # fail now, naming the matrix, if a layer or pooling is not there
        identity = extraction_identity(model, texts, None, 128)
        return cls(kind, names, mode, {"dataset": dataset.name, "identity": identity})

    def describe(self) -> dict[str, Any]:
        """The JSON form saved in ``model.json`` (`from_description` reverses it)."""
        return {"kind": self.kind, "features": self.features, "mode": self.mode, **self.source}

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> FeatureEncoderFactory:
        source: dict[str, Any] = {k: desc[k] for k in ("dataset", "identity") if k in desc}
        check_spec(desc["kind"], list(desc["features"]), desc.get("mode", "gate"))
        return cls(desc["kind"], list(desc["features"]), desc.get("mode", "gate"), source)

    def feature_set(self, store: FeatureStore | None = None) -> FeatureSet:
        identity = self.source["identity"]
        fset = (store or FeatureStore()).feature_set(
            self.source["dataset"], identity["model"], identity
        )
        if not fset.complete:
            raise DataError(
                f"features {', '.join(self.features)} of {self.source['dataset']!r} are not in "
                f"the feature store ({fset.folder}); run `recfuse features extract --model "
                f"{identity['model']} --dataset {self.source['dataset']}`"
            )
        return fset

    def matrices(self) -> np.ndarray:
        """The named matrices stacked: [K, n_items, d]."""
        fset = self.feature_set()
        return np.stack([fset.load(name) for name in self.features])

    def __call__(self, split: Split, dim: int) -> ItemEncoder:
        if self.kind == "id":
            return IdEncoder(split.n_items, dim)
        feats = self.matrices()
        if feats.shape[1] != split.n_items:
            raise DataError(
                f"features have {feats.shape[1]} items, the split has {split.n_items} "
                "(were they extracted for another dataset or k-core?)"
            )
        if self.kind == "replace":
            return ReplacementEncoder(feats[0], dim)
        if self.kind == "fusion":
            return FusionEncoder(feats[0], dim, mode=self.mode)
        layers = [parse_matrix_name(n)[1] for n in self.features]
        return DFFEncoder(feats, dim, layers=layers)
