"""The model side of serving: one loaded model, batched scoring, candidates and explanations.

Requests that arrive together are scored together: a `Batcher` thread collects what is queued
(up to ``max_batch`` rows, waiting at most ``window_ms`` after the first) and makes one
``model.score`` call, so sixteen concurrent clients cost about one batched forward pass.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recfuse.errors import DataError
from recfuse.models.base import Recommender, mask_histories, top_k


class UnknownId(DataError):
    """A raw user or item id the served model's data does not have (HTTP 404)."""


@dataclass(frozen=True)
class Query:
    """One scoring request: a user index (-1 for a new user) and the visible history."""

    user: int
    history: np.ndarray


class Batcher:
    """Scores queued `Query` rows in batches on one worker thread (the model is not re-entrant)."""

    def __init__(self, model: Recommender, max_batch: int = 64, window_ms: float = 2.0) -> None:
        self.model = model
        self.max_batch = max_batch
        self.window = window_ms / 1000.0
        self._queue: queue.Queue[tuple[Query, Future[np.ndarray]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="recfuse-batcher", daemon=True)
        self._thread.start()
        self.batches = 0
        self.rows = 0

    def score(self, query: Query, timeout: float | None = None) -> np.ndarray:
        """Scores of every item for ``query``: float32 [n_items]."""
        future: Future[np.ndarray] = Future()
        self._queue.put((query, future))
        return future.result(timeout=timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=2.0)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            pending = [first]
            try:
                while len(pending) < self.max_batch:
                    item = self._queue.get(timeout=self.window)
                    if item is None:
                        self._queue.put(None)
                        break
                    pending.append(item)
            except queue.Empty:
                pass
            self._run(pending)

    def _run(self, pending: list[tuple[Query, Future[np.ndarray]]]) -> None:
        users = np.array([q.user for q, _ in pending])
        histories = [q.history for q, _ in pending]
        try:
            with torch.inference_mode():
                scores = np.asarray(self.model.score(users, histories), dtype=np.float32)
        except Exception as exc:  # each waiting request gets the error, the thread lives on
            for _, future in pending:
                future.set_exception(exc)
            return
        self.batches += 1
        self.rows += len(pending)
        for row, (_, future) in enumerate(pending):
            future.set_result(scores[row])


def candidates(scores: np.ndarray, history: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` best unseen items with a finite score, best first (history masked)."""
    masked = mask_histories(scores[None].copy(), [history])
    top = top_k(masked, n)[0]
    return top[np.isfinite(masked[0, top])]


def item_popularity(model: Recommender) -> np.ndarray:
    """Training interactions per item: int64 [n_items]."""
    return np.bincount(model.split_.train["item"].to_numpy(), minlength=model.split_.n_items)


def ablation(
    model: Recommender, user: int, history: np.ndarray, item: int, window: int = 200
) -> tuple[float, np.ndarray, np.ndarray]:
    """How much each recent history item adds to ``item``'s score (leave-one-out).

    Scores the full history and, in one batch, the history without each of its last ``window``
    items. For EASE and ItemKNN (linear in the history) this is exactly the neighbour weight
    B[j, item]; for SASRec/GRU4Rec it is the item's effect through the whole network.
    Returns (full score, history positions [m], contributions [m]).
    """
    positions = np.arange(max(0, len(history) - window), len(history))
    variants = [history] + [np.delete(history, p) for p in positions]
    with torch.inference_mode():
        scores = np.asarray(model.score(np.full(len(variants), user), variants), dtype=np.float64)
    full = float(scores[0, item])
    return full, positions, full - scores[1:, item]


def item_vectors(model: Recommender) -> np.ndarray | None:
    """Learned item vectors [n_items, d] where the model has them (BPR, SASRec, GRU4Rec)."""
    net = getattr(model, "net_", None)
    if net is None:
        return None
    n = model.split_.n_items
    for module in net.modules():
        if isinstance(module, torch.nn.Embedding) and module.num_embeddings in (n, n + 1):
            weight = module.weight.detach().cpu().numpy()
            return weight[-n:] if module.num_embeddings == n + 1 else weight
    return None


def nearest(vectors: np.ndarray, item: int, among: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` items of ``among`` closest to ``item`` by cosine: [(item index, cosine)]."""
    if len(among) == 0:
        return []
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sims = unit[among] @ unit[item]
    order = np.argsort(-sims, kind="stable")[:k]
    return [(int(among[i]), float(sims[i])) for i in order]


def frozen_features(model: Recommender) -> tuple[str, np.ndarray] | None:
    """The frozen-model item matrix a run's encoder reads, with its name; None without one."""
    encoder: Any = getattr(model, "encoder", None)
    names = getattr(encoder, "features", None)
    if not names or not hasattr(encoder, "matrices"):
        return None
    try:
        matrices = encoder.matrices()
    except DataError:
        return None  # features were removed from the store since training: explain without
    return str(names[-1]), np.asarray(matrices[-1], dtype=np.float32)


def history_of(model: Recommender, user_raw: Any | None, items_raw: Sequence[Any] | None) -> Query:
    """The `Query` for a known raw user id and/or a raw item history (new users: index -1)."""
    ids = model.ids_
    try:
        user = ids.user_index(user_raw) if user_raw is not None else -1
        if items_raw is not None:
            return Query(user, np.asarray(ids.item_indices(list(items_raw)), dtype=np.int64))
    except DataError as exc:
        raise UnknownId(str(exc)) from None
    return Query(user, np.asarray(model.serving_history(user), dtype=np.int64))


def item_index(model: Recommender, raw: Any) -> int:
    """Index of a raw item id; `DataError` naming it when the model's data lacks it."""
    try:
        return int(model.ids_.item_indices([raw])[0])
    except DataError as exc:
        raise UnknownId(str(exc)) from None
