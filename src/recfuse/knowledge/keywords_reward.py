"""The keyword reward (MMSRARec's summary reward, text only) and best-of-n selection.

For a candidate keyword set ``k`` of item ``i`` (all vectors unit-length MiniLM embeddings, so a
dot product is a cosine), over the whole catalogue of N item texts ``t_1..t_N``:

- length cost ``L = min(words(k) / max_words, 1)``;
- information loss ``I = 1 - cos(k, t_i)``;
- reconstruction ``R = 1 - rank / (N - 1)``, where ``rank`` is the 0-based pessimistic rank of
  item ``i`` when all items are retrieved by ``k`` (every other item scoring >= ``t_i`` ranks
  above it);
- difficulty ``D = max(0, max_{j != i} cos(k, t_j) - cos(k, t_i) + margin)``: how close the
  nearest wrong item comes (0 when ``t_i`` wins by at least ``margin``).

``reward = w_R R - w_L L - w_I I - w_D D``. Nothing here sees interactions, so no valid/test
information can enter the reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recfuse.knowledge.keywords import Candidate

COMPONENTS = ("length", "info_loss", "recon", "difficulty")


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the four components, the word budget and the difficulty margin."""

    length: float = 0.3
    info_loss: float = 1.0
    recon: float = 1.0
    difficulty: float = 0.5
    max_words: int = 16
    margin: float = 0.05


def reward_components(
    keyword_vectors: np.ndarray,
    owners: np.ndarray,
    n_words: np.ndarray,
    item_vectors: np.ndarray,
    weights: RewardWeights | None = None,
    block: int = 512,
) -> dict[str, np.ndarray]:
    """The components and the reward of M candidates.

    Args:
        keyword_vectors: unit-length vectors of the candidates' keyword texts, float [M, d].
        owners: the item each candidate summarizes, int [M].
        n_words: words in each candidate's keywords, int [M].
        item_vectors: unit-length vectors of every item's full text, float [N, d].
    Returns:
        ``length``, ``info_loss``, ``recon``, ``difficulty``, ``rank`` and ``reward``, each [M].
    """
    w = weights or RewardWeights()
    owners = np.asarray(owners, dtype=np.int64)
    n = len(item_vectors)
    own = np.zeros(len(owners), dtype=np.float64)
    rank = np.zeros(len(owners), dtype=np.int64)
    wrong = np.zeros(len(owners), dtype=np.float64)
    for lo in range(0, len(owners), block):  # [block, N] similarities at a time
        rows = np.arange(lo, min(lo + block, len(owners)))
        sims = keyword_vectors[rows] @ item_vectors.T
        mine = sims[np.arange(len(rows)), owners[rows]]
        own[rows] = mine
        rank[rows] = np.count_nonzero(sims >= mine[:, None], axis=1) - 1
        sims[np.arange(len(rows)), owners[rows]] = -np.inf
        wrong[rows] = sims.max(axis=1)
    length = np.minimum(np.asarray(n_words, dtype=np.float64) / w.max_words, 1.0)
    info = 1.0 - own
    recon = 1.0 - rank / max(n - 1, 1)
    difficulty = np.maximum(0.0, wrong - own + w.margin)
    reward = w.recon * recon - w.length * length - w.info_loss * info - w.difficulty * difficulty
    return {
        "length": length, "info_loss": info, "recon": recon, "difficulty": difficulty,
        "rank": rank.astype(np.float64), "reward": reward,
    }  # fmt: skip


def best_of_n(owners: np.ndarray, rewards: np.ndarray) -> dict[int, int]:
    """Per item, the index of its highest-reward candidate (ties: the first; ``-inf`` rewards,
    i.e. invalid answers, are never chosen). Items with no valid candidate are absent."""
    best: dict[int, int] = {}
    for idx in np.argsort(-np.asarray(rewards), kind="stable"):
        if not np.isfinite(rewards[idx]):
            continue
        best.setdefault(int(owners[idx]), int(idx))
    return best


def distribution(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean, std and quartiles of finite values (a reward distribution per round)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if not len(arr):
        return {"n": 0.0}
    q = np.quantile(arr, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {
        "n": float(len(arr)), "mean": float(arr.mean()), "std": float(arr.std()),
        "p10": float(q[0]), "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]),
        "p90": float(q[4]),
    }  # fmt: skip


def score_candidates(
    candidates: Sequence[Candidate],
    item_vectors: np.ndarray,
    weights: RewardWeights | None = None,
    encoder: str = "minilm",
) -> dict[str, np.ndarray]:
    """`reward_components` of every candidate (rows follow ``candidates``); a candidate whose
    answer did not validate gets NaN components and reward ``-inf``. Keyword texts are embedded
    by `recfuse.features.embed.embed` (cached per text)."""
    from recfuse.features.embed import embed

    valid = np.array([c.keywords is not None for c in candidates], dtype=bool)
    out = {name: np.full(len(candidates), np.nan) for name in (*COMPONENTS, "rank")}
    out["reward"] = np.full(len(candidates), -np.inf)
    out["n_words"] = np.array([c.keywords.n_words if c.keywords else 0 for c in candidates])
    if valid.any():
        chosen = [c for c, ok in zip(candidates, valid, strict=True) if ok]
        vectors = embed([c.keywords.text() for c in chosen if c.keywords], encoder)
        owners = np.array([c.item for c in chosen])
        parts = reward_components(vectors, owners, out["n_words"][valid], item_vectors, weights)
        for name, values in parts.items():
            out[name][valid] = values
    return out
