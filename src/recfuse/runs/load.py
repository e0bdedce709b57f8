"""`load_run`: a run folder's trained model, ready to score and recommend, without refitting."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recfuse.data.dataset import Dataset
    from recfuse.models.base import Recommender


def load_run(path: str | Path, dataset: Dataset | None = None, device: str = "cpu") -> Recommender:
    """The model a `recfuse run` trained, loaded from ``path/model`` (or a model folder).

    The model comes back fitted, with ``split_`` (the run's `Split`) and ``ids_`` (raw id maps),
    so ``model.recommend_raw("196", k=10)`` works at once. Loading refuses another format version
    and a dataset fingerprint that differs from the training data's (``dataset`` when given, and
    always the run's own split and id files), with a `DataError` that says which.

    Load once and keep the model: a single user's ``recommend_raw`` then scores one row.
    """
    from recfuse.models.saving import load_model

    return load_model(path, dataset=dataset, device=device)
