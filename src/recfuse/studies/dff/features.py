"""The DFF study's frozen features: every layer of the study's items and optional captions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recfuse.data.dataset import Dataset


@dataclass
class StudyFeatures:
    """Frozen features of the study's catalogue: all layers [L, n, d] and optional captions
    [n, d] (zero rows for items without a caption)."""

    layers: np.ndarray
    captions: np.ndarray | None
    caption_coverage: float
    caption_note: str
    model: str
    extraction: str

    @property
    def n_layers(self) -> int:
        return int(self.layers.shape[0])

    def fingerprint(self) -> dict[str, Any]:
        """What a cell's key needs of the features: which extraction, whether captions exist."""
        return {
            "extraction": self.extraction.rsplit("/", 1)[-1],
            "shape": list(self.layers.shape),
            "captions": None if self.captions is None else round(self.caption_coverage, 6),
        }


def locate_name(model: str) -> str:
    from recfuse.frozen import locate_model

    return locate_model(model).name


def sweep_layers(n_layers: int, stride: int) -> list[int]:
    """Every ``stride``-th layer from 0, always including the last."""
    chosen = list(range(0, n_layers, max(1, stride)))
    if chosen[-1] != n_layers - 1:
        chosen.append(n_layers - 1)
    return chosen


def load_study_features(
    full: Dataset,
    data: Dataset,
    model: str,
    pooling: str,
    progress: bool,
    store: Any = None,
    device: str = "cpu",
) -> StudyFeatures:
    """Extract (or reuse) the full catalogue's layer features and pick the study's rows."""
    from recfuse.features.extract import extract_features, extraction_identity
    from recfuse.features.store import FeatureStore

    store = store or FeatureStore()
    full_texts = full.item_texts()
    rows = data.items["source_item"].to_numpy() if "source_item" in data.items else None
    whole = store.feature_set(
        full.name, locate_name(model), extraction_identity(model, full_texts, None, 128)
    )
    if rows is None or whole.complete:
        # the whole catalogue is (or is being made) extracted: reuse it, pick the study's rows
        fset = extract_features(
            full_texts, model, full.name, None, store, progress=progress, device=device
        )
        stacked = fset.layers(pooling)
        if rows is not None:
            stacked = stacked[:, rows]
    else:
        # only the subsample's items: a slow model then costs what the study needs, no more
        fset = extract_features(
            data.item_texts(), model, data.name, None, store, progress=progress, device=device
        )
        stacked = fset.layers(pooling)
    captions, coverage, note = _captions(full, rows, model, pooling, store, progress, device)
    return StudyFeatures(stacked, captions, coverage, note, model, str(fset.folder))


def _captions(
    full: Dataset,
    rows: np.ndarray | None,
    model: str,
    pooling: str,
    store: Any,
    progress: bool,
    device: str,
) -> tuple[np.ndarray | None, float, str]:
    """Caption features of the study's items (last layer), their coverage and a note."""
    from recfuse.features.captions import CaptionResult, cached_captions, encode_captions

    cached = cached_captions(full.name, store)
    if cached is None:
        note = (
            f"captions not cached: run `recfuse features captions --dataset {full.name}` "
            f"(add --items-of-users N to caption only a user sample's items) to add this arm"
        )
        return None, 0.0, note
    if rows is not None:
        # encode only the captions of the study's items (a subsample needs no more)
        wanted = np.isin(cached.items, rows)
        cached = CaptionResult(
            cached.items[wanted],
            [c for c, keep in zip(cached.captions, wanted, strict=True) if keep],
            None,
            cached.folder,
            cached.backend,
        )
    encoded = encode_captions(cached, full.name, model, store, progress, device)
    matrix = encoded.matrix(full.n_items, layer=-1, pooling=pooling)
    has = np.zeros(full.n_items, dtype=bool)
    has[encoded.items] = True
    if rows is not None:
        matrix, has = matrix[rows], has[rows]
    coverage = float(has.mean())
    note = (
        f"captions ({encoded.backend} backend) cover {has.sum()} of {len(has)} catalogue items "
        f"({coverage:.1%})"
    )
    return matrix, coverage, note
