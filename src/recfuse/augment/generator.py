"""The generator: synthetic interactions for long-tail items, judged by a teacher.

For each tail item: a cheap retriever ranks users by the cosine of their mean training MiniLM
vector with the item's vector; ``candidates`` users are sampled (seeded) from the top ``pool``;
the teacher scores them; the top ``per_item`` become synthetic edges (weight ``weight``, flag
``synthetic``), each item's write passing the governance gate.

Time position: a synthetic edge gets the time just *before* the user's first training
interaction, so the user's last training item (the I2I trigger) and the valid/test periods are
untouched; edges only change what an I2I model is fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recfuse.augment.gate import RefinementGate
from recfuse.augment.teachers import SimilarityTeacher, Teacher
from recfuse.split import Split

EDGE_COLUMNS = ["user", "item", "time", "weight", "synthetic"]


@dataclass(frozen=True)
class GeneratorSettings:
    """per_item: synthetic edges per tail item (m); candidates: users the teacher judges per
    item; pool: retriever's top users the candidates are sampled from; weight: a synthetic
    edge's weight; max_items: at most this many tail items (the rarest first; None: all)."""

    per_item: int = 3
    candidates: int = 10
    pool: int = 50
    weight: float = 0.5
    max_items: int | None = None


def real_edges(split: Split) -> pd.DataFrame:
    """The training interactions as an edge frame (weight 1, not synthetic)."""
    frame = split.train[["user", "item", "time"]].copy()
    frame["weight"] = 1.0
    frame["synthetic"] = False
    return frame


def tail_mask(split: Split, tail_fraction: float = 0.8) -> np.ndarray:
    """bool [n_items]: the least popular ``tail_fraction`` of items by training count (the
    Evaluator's definition, stable order)."""
    pop = np.bincount(split.train["item"], minlength=split.n_items)
    order = np.argsort(-pop, kind="stable")
    tail = np.ones(split.n_items, dtype=bool)
    tail[order[: int(round((1 - tail_fraction) * split.n_items))]] = False
    return tail


def target_items(split: Split, tail: np.ndarray, max_items: int | None) -> np.ndarray:
    """Tail items to generate for, rarest first."""
    pop = np.bincount(split.train["item"], minlength=split.n_items)
    items = np.flatnonzero(tail)
    items = items[np.argsort(pop[items], kind="stable")]
    return items if max_items is None else items[:max_items]


def blocked_matrix(split: Split) -> sp.csr_matrix:
    """user × item: pairs no synthetic edge may be (any period: training pairs exist already,
    valid/test pairs are forbidden)."""
    frame = pd.concat([split.train, split.valid, split.test])
    ones = np.ones(len(frame), dtype=np.float32)
    return sp.csr_matrix((ones, (frame["user"], frame["item"])), (split.n_users, split.n_items))


def retrieve(
    profiles: SimilarityTeacher, items: np.ndarray, settings: GeneratorSettings,
    rng: np.random.Generator, chunk: int = 256,
) -> np.ndarray:  # fmt: skip
    """[len(items), candidates] user indices: a seeded sample of each item's top-``pool`` users."""
    split = profiles.split
    users = np.arange(split.n_users)
    prof = profiles.profiles(users).astype(np.float32)  # [n_users, d]
    blocked = blocked_matrix(split).tocsc()
    out = np.zeros((len(items), settings.candidates), dtype=np.int64)
    pool = min(settings.pool, split.n_users - 1)
    for lo in range(0, len(items), chunk):
        part = items[lo : lo + chunk]
        sims = prof @ profiles.vectors[part].T.astype(np.float32)  # [n_users, c]
        sims[blocked[:, part].toarray() > 0] = -np.inf
        top = np.argpartition(-sims, kth=pool - 1, axis=0)[:pool].T  # [c, pool]
        for r in range(len(part)):
            out[lo + r] = rng.choice(top[r], settings.candidates, replace=False)
    return out


def generate(
    split: Split, teacher: Teacher, profiles: SimilarityTeacher, gate: RefinementGate,
    settings: GeneratorSettings, rng: np.random.Generator,
) -> pd.DataFrame:  # fmt: skip
    """Synthetic edges (``EDGE_COLUMNS``) for the tail items, through the gate."""
    items = target_items(split, gate.tail, settings.max_items)
    cands = retrieve(profiles, items, settings, rng)  # [t, candidates]
    scores = teacher.score(cands.ravel(), np.repeat(items, cands.shape[1])).reshape(cands.shape)
    best = np.argsort(-scores, axis=1, kind="stable")[:, : settings.per_item]
    chosen = [(int(i), np.take(c, b)) for i, c, b in zip(items, cands, best, strict=True)]
    return _write(split, gate, chosen, settings.weight, f"generator:{teacher.name}")


def random_synthetic(
    split: Split, like: pd.DataFrame, gate: RefinementGate, weight: float,
    rng: np.random.Generator,
) -> pd.DataFrame:  # fmt: skip
    """The control: as many synthetic edges per item as ``like`` has, to uniformly random users
    (never a blocked pair)."""
    blocked = blocked_matrix(split).tocsc()
    chosen = []
    for item, count in like.groupby("item").size().items():
        free = np.setdiff1d(np.arange(split.n_users), blocked[:, item].indices)
        chosen.append((int(item), rng.choice(free, min(int(count), len(free)), replace=False)))
    return _write(split, gate, chosen, weight, "random")


def _write(
    split: Split, gate: RefinementGate, chosen: list[tuple[int, np.ndarray]], weight: float,
    source: str,
) -> pd.DataFrame:  # fmt: skip
    """Pass each item's users through the gate; the written ones become edges."""
    first = split.train.groupby("user")["time"].min()
    rows = []
    for item, users in chosen:
        written = gate.write_synthetic(item, np.asarray(users, np.int64), source)
        rows += [(int(u), item) for u in written]
    frame = pd.DataFrame(rows, columns=["user", "item"], dtype=np.int64)
    frame["time"] = frame["user"].map(first).fillna(0).astype(np.int64) - 1
    frame["weight"] = float(weight)
    frame["synthetic"] = True
    return frame[EDGE_COLUMNS]
