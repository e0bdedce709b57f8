"""`FeatureStore`: item-feature matrices of frozen models on disk, content-addressed.

Layout under the store root (``$RECFUSE_CACHE/features`` unless a folder is named)::

    <dataset>/<model>-<key>/manifest.json      what was extracted, from what, and the matrix list
    <dataset>/<model>-<key>/layer3_mean.npy    one float32 matrix [n_items, d] per (layer, pooling)
    <dataset>/<model>-<key>/chunks/            partial results of an unfinished extraction

``key`` hashes everything a matrix depends on (model name and weights hash, text template, the
hash of the item texts, truncation length), so a change recomputes and a rerun reuses. Matrices
are named ``minilm/layer3/mean``; the manifest is written last, so a folder without one is an
unfinished extraction and never read as finished.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.atomic import atomic_path, write_json
from recfuse.data.locate import cache_root
from recfuse.errors import ConfigError, DataError

POOLINGS = ("mean", "last")


def text_hash(text: str) -> str:
    """The content address of one text: SHA-256 hex digest of its UTF-8 bytes.

    The one per-text hash: `recfuse.features.embed` caches vectors under it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def texts_hash(texts: Sequence[str]) -> str:
    """A SHA-256 over a whole list of texts in order (length-prefixed, so joins cannot collide):
    the identity of an item-text table (a feature set's ``text_hash`` manifest field)."""
    digest = hashlib.sha256()
    for text in texts:
        raw = text.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()[:16]


def matrix_name(model: str, layer: int, pooling: str) -> str:
    """The store name of one matrix, e.g. ``minilm/layer3/mean``."""
    return f"{model}/layer{layer}/{pooling}"


def parse_matrix_name(name: str) -> tuple[str, int, str]:
    """``"minilm/layer3/mean"`` -> ``("minilm", 3, "mean")``; raises ConfigError otherwise."""
    parts = name.split("/")
    if len(parts) != 3 or not parts[1].startswith("layer") or parts[2] not in POOLINGS:
        raise ConfigError(f"feature name {name!r} is not MODEL/layerN/{'|'.join(POOLINGS)}")
    try:
        layer = int(parts[1][5:])
    except ValueError:
        raise ConfigError(f"feature name {name!r}: layer number is not an integer") from None
    return parts[0], layer, parts[2]


@dataclass(frozen=True)
class FeatureSet:
    """One finished or unfinished extraction: a folder with a manifest and its matrices."""

    folder: Path

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    @property
    def chunk_dir(self) -> Path:
        return self.folder / "chunks"

    @property
    def complete(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> dict[str, Any]:
        if not self.complete:
            raise DataError(f"{self.folder}: extraction not finished (no manifest.json)")
        return json.loads(self.manifest_path.read_text())

    @property
    def model(self) -> str:
        return str(self.manifest()["model"])

    @property
    def n_layers(self) -> int:
        """Number of stored hidden-state layers (embedding output + blocks)."""
        return int(self.manifest()["n_layers"])

    def names(self) -> list[str]:
        return sorted(self.manifest()["matrices"])

    def path_of(self, layer: int, pooling: str) -> Path:
        return self.folder / f"layer{layer}_{pooling}.npy"

    def load(self, name_or_layer: str | int, pooling: str = "mean") -> np.ndarray:
        """One matrix [n_items, d] by name (``minilm/layer3/mean``) or by layer and pooling."""
        if isinstance(name_or_layer, str):
            model, layer, pooling = parse_matrix_name(name_or_layer)
            if model != self.model:
                raise ConfigError(f"feature {name_or_layer!r}: this set holds {self.model!r}")
        else:
            layer = int(name_or_layer)
        manifest = self.manifest()
        name = matrix_name(manifest["model"], layer, pooling)
        if name not in manifest["matrices"]:
            raise ConfigError(
                f"{self.folder}: no matrix {name!r} (layers 0..{manifest['n_layers'] - 1}, "
                f"poolings {', '.join(manifest['poolings'])})"
            )
        return np.load(self.path_of(layer, pooling))

    def layers(self, pooling: str = "mean", layers: Sequence[int] | None = None) -> np.ndarray:
        """Several layers stacked: [K, n_items, d] (all layers by default)."""
        chosen = range(self.n_layers) if layers is None else layers
        return np.stack([self.load(layer, pooling) for layer in chosen])

    def save_matrix(self, layer: int, pooling: str, matrix: np.ndarray) -> None:
        """Write one matrix atomically (the manifest is written separately, last)."""
        with atomic_path(self.path_of(layer, pooling)) as tmp, tmp.open("wb") as fh:
            np.save(fh, np.ascontiguousarray(matrix, dtype=np.float32))

    def finish(self, manifest: dict[str, Any]) -> None:
        """Write the manifest: from now on the set counts as complete."""
        write_json(self.manifest_path, manifest)


class FeatureStore:
    """All feature sets under one root folder.

    Args:
        folder: root folder; default ``$RECFUSE_CACHE/features`` (``~/.cache/recfuse/features``).
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.root = Path(folder) if folder is not None else cache_root() / "features"

    @staticmethod
    def key(identity: dict[str, Any]) -> str:
        """Content address of an extraction: a hash of its identity (model, weights, texts...)."""
        blob = json.dumps(identity, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def feature_set(self, dataset: str, model: str, identity: dict[str, Any]) -> FeatureSet:
        """The (possibly not yet existing) feature set for this identity."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset)
        return FeatureSet(self.root / safe / f"{model}-{self.key(identity)}")

    def __iter__(self) -> Iterator[FeatureSet]:
        if not self.root.is_dir():
            return
        for manifest in sorted(self.root.glob("*/*/manifest.json")):
            yield FeatureSet(manifest.parent)

    def unfinished(self) -> list[Path]:
        """Folders with partial chunks but no manifest (a killed extraction to resume)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p
            for p in self.root.glob("*/*")
            if (p / "chunks").is_dir()
            and not (p / "manifest.json").exists()
            and not p.name.startswith("captions-")  # caption sets keep their own chunks
        )
