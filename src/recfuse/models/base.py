"""`Recommender`: the one interface every model in recfuse meets (scikit-learn style).

Fit, score, recommend; save to ``model.json`` + ``weights.safetensors`` and load back without
refitting (`Recommender.load`); answer in raw ids (`Recommender.recommend_raw`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recfuse.errors import DataError
from recfuse.split import Split

if TYPE_CHECKING:
    import torch

    from recfuse.data.dataset import Dataset
    from recfuse.data.ids import IdMaps


@dataclass(frozen=True)
class Recommendation:
    """One recommended item: its raw id, score, rank (1 = best) and title ("" when unknown)."""

    rank: int
    item_id: Any
    score: float
    title: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "item_id": self.item_id,
            "score": self.score,
            "title": self.title,
        }


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first: [B, min(k, n_items)]."""
    k = min(k, scores.shape[1])
    if k < scores.shape[1]:
        top = np.argpartition(-scores, kth=k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def mask_histories(scores: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
    """Set each row's history items to -inf in place and return ``scores`` [B, n_items]."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    cols = np.concatenate(histories) if rows.size else np.zeros(0, dtype=np.int64)
    scores[rows, cols] = -np.inf
    return scores


def all_histories(split: Split) -> list[np.ndarray]:
    """Per user index, every interaction of the split (train, valid and test) in time order."""
    both = pd.concat([split.train, split.valid, split.test], ignore_index=True)
    both = both.sort_values(["user", "time"], kind="stable")
    users, items = both["user"].to_numpy(), both["item"].to_numpy()
    bounds = np.searchsorted(users, np.arange(split.n_users + 1))
    return [items[bounds[u] : bounds[u + 1]] for u in range(split.n_users)]


class Recommender(ABC):
    """A recommender: ``fit(split)`` on training data, then ``score`` users against all items.

    Hyper-parameters are constructor arguments; fitted state ends with an underscore. ``score``
    receives the histories the evaluator allows for the stage (training items at validation,
    training + validation items at test), so sequential and neighbourhood models use exactly what a
    deployed model would have, and nothing later.

    Saving: a subclass says what its fitted state is (`fitted_tensors`, `fitted_meta`) and how to
    put it back (`restore`); `save` / `load` do the rest the same way for every model.
    """

    #: short name used in tables and run folders
    name: str = "recommender"
    #: whether ``score`` can serve a user from a history alone (False: it needs a user index)
    needs_known_user: bool = False
    #: constructor argument -> attribute that holds it, where the names differ
    param_attributes: dict[str, str] = {}
    # fitted state every model has: the split it learned from, raw id maps (set by `load`, or
    # by hand: ``model.ids_ = IdMaps.from_dataset(dataset)``) and the data fingerprint
    split_: Split
    ids_: IdMaps
    fingerprint_: str

    def fit(self, split: Split, **kwargs: Any) -> Recommender:
        """Learn from ``split.train`` (and use ``split.valid`` only for early stopping)."""
        self.n_items_ = split.n_items
        self.split_ = split
        return self

    @abstractmethod
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every item for each user.

        Args:
            users: user indices, shape [B].
            histories: per user, the visible item indices in time order.
        Returns:
            float32 array [B, n_items]; higher is better. Seen items need not be masked here: the
            evaluator masks them.
        """

    def recommend(
        self, users: np.ndarray, histories: Sequence[np.ndarray], k: int = 10
    ) -> np.ndarray:
        """Top-``k`` unseen item indices per user, shape [B, min(k, n_items)], best first."""
        scores = np.array(self.score(users, histories), dtype=np.float32, copy=True)
        return top_k(mask_histories(scores, histories), k)

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, for run folders and tables."""
        return {
            k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")
        }

    # ---- saving and loading ---------------------------------------------------------------
    def init_params(self) -> dict[str, Any]:
        """The JSON-able constructor arguments that rebuild this model (before fitting)."""
        from recfuse.models.saving import constructor_parameters

        return {
            name: getattr(self, self.param_attributes.get(name, name))
            for name in constructor_parameters(type(self))
            if hasattr(self, self.param_attributes.get(name, name))
        }

    def fitted_tensors(self) -> dict[str, torch.Tensor]:
        """Every fitted array, by name, for ``weights.safetensors``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement saving")

    def fitted_meta(self) -> dict[str, Any]:
        """Small JSON-able fitted state (shapes, names) stored in ``model.json``."""
        return {}

    def restore(
        self,
        tensors: dict[str, torch.Tensor],
        meta: dict[str, Any],
        split: Split,
        device: torch.device,
    ) -> None:
        """Put the fitted state back from `fitted_tensors` / `fitted_meta` (no refitting)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement loading")

    @classmethod
    def from_saved(
        cls, params: dict[str, Any], tensors: dict[str, torch.Tensor], meta: dict[str, Any]
    ) -> Recommender:
        """An unfitted instance from saved constructor params (a hook for special arguments)."""
        return cls(**params)

    def save(self, path: str | Path, ids: IdMaps | None = None, **kwargs: Any) -> Path:
        """Write the fitted model to folder ``path`` (``model.json`` + ``weights.safetensors``).

        Args:
            ids: the raw id maps (`IdMaps.from_dataset(dataset)`) so the loaded model answers in
                raw ids; without them raw ids are the indices.
        """
        from recfuse.models.saving import save_model

        return save_model(self, path, ids=ids, **kwargs)

    @classmethod
    def load(
        cls, path: str | Path, dataset: Dataset | None = None, device: str = "cpu"
    ) -> Recommender:
        """A ready model from a model folder or a run folder, with its split and id maps.

        Refuses (`DataError`) another format version, and data whose fingerprint differs from
        the one the model was trained on (``dataset``, or the split files beside the model).
        """
        from recfuse.models.saving import load_model

        model = load_model(path, dataset=dataset, device=device)
        if not isinstance(model, cls):
            raise DataError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    # ---- recommendations in raw ids -------------------------------------------------------
    def serving_history(self, user: int) -> np.ndarray:
        """Every item the split has for user index ``user``, in time order (cached per model)."""
        cache = self.__dict__.get("_all_histories")
        if cache is None:
            cache = self.__dict__["_all_histories"] = all_histories(self.split_)
        return cache[user]

    def recommend_raw(
        self, user_id: Any = None, k: int = 10, history: Sequence[Any] | None = None
    ) -> list[Recommendation]:
        """Top-``k`` items for one user, in raw ids, the history masked.

        Args:
            user_id: a raw user id of the model's data; its history is every interaction the
                split holds for it (train, valid and test), all masked.
            k: list length (shorter when fewer unmasked items have a finite score).
            history: raw item ids, oldest first, for a user the model never saw (or to replace a
                known user's history); needs a model that scores from histories.
        Returns:
            `Recommendation` rows, best first.
        """
        ids = self.__dict__.get("ids_")
        if ids is None:
            raise DataError(
                f"{self.name} has no raw id maps: load it with recfuse.load_run(run), or set "
                "model.ids_ = IdMaps.from_dataset(dataset) after fitting"
            )
        user = -1 if user_id is None else None
        if history is not None:
            hist = ids.item_indices(list(history))
            if user_id is not None:
                user = ids.user_index(user_id)
        elif user_id is not None:
            user = ids.user_index(user_id)
            hist = self.serving_history(user)
        else:
            raise DataError("give a user id, a history of item ids, or both")
        if self.needs_known_user and (user is None or user < 0):
            raise DataError(f"{self.name} needs a known user id; it cannot score a new history")
        scores = np.array(self.score(np.array([user]), [hist]), dtype=np.float32, copy=True)
        mask_histories(scores, [hist])
        top = top_k(scores, k)[0]
        top = top[np.isfinite(scores[0, top])]
        titles = ids.titles
        return [
            Recommendation(
                rank + 1,
                ids.item_ids[i].item() if hasattr(ids.item_ids[i], "item") else ids.item_ids[i],
                float(scores[0, i]),
                "" if titles is None else str(titles[i]),
            )
            for rank, i in enumerate(top)
        ]
