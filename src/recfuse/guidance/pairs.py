"""Training-period pairs for LLM guidance: nothing from the validation or test period.

Each training user's *training* history is cut into a prefix and its last item (the held-out
training next item). A teacher sees only the prefix; the pair (held-out item, negative) has a
known truth — the user took the held-out item — so teacher accuracy and the gate's labels come
from the training period alone. Negatives are hard ones (the top-K of a backbone trained on the
prefixes) and popularity-sampled ones, drawn only from items seen in the prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recfuse.errors import LeakageError
from recfuse.models.base import Recommender
from recfuse.split import Split

PAIR_COLUMNS = ("user", "pos", "neg", "kind")


def holdout_split(split: Split) -> Split:
    """The training period as its own split: per user with >= 2 training items, the last one
    becomes ``valid`` (the held-out training item), the rest ``train``; ``test`` is empty.

    A model fitted on it (early stopping on the held-out items) never saw a valid/test row.
    """
    train = split.train.sort_values(["user", "time"], kind="stable").reset_index(drop=True)
    from_end = train.groupby("user").cumcount(ascending=False).to_numpy()
    size = train.groupby("user")["item"].transform("size").to_numpy()
    last = (from_end == 0) & (size >= 2)
    prefix, held = train[~last].reset_index(drop=True), train[last].reset_index(drop=True)
    empty = train.iloc[:0].copy()
    return Split(
        "train_holdout",
        split.seed,
        split.n_users,
        split.n_items,
        prefix,
        held,
        empty,
        {"of": split.protocol},
    )


@dataclass
class PairSet:
    """Candidate pairs with the holdout split they came from.

    ``pairs``: columns ``user``, ``pos`` (held-out training item), ``neg``, ``kind``
    (``hard`` | ``pop``); the truth is always pos > neg.
    """

    holdout: Split
    pairs: pd.DataFrame

    def prefixes(self) -> list[np.ndarray]:
        """Per user index, the prefix history (what a teacher and the gate may see)."""
        return self.holdout.histories("valid")


def build_pairs(
    holdout: Split,
    backbone: Recommender | None,
    n_hard: int = 3,
    n_pop: int = 2,
    top_k: int = 50,
    seed: int = 0,
) -> PairSet:
    """Pairs (held-out item, negative) per holdout user.

    ``backbone`` is fitted on ``holdout`` (or None: popularity negatives only); its top-``top_k``
    for the prefix gives ``n_hard`` random hard negatives, and ``n_pop`` more are sampled in
    proportion to prefix popularity. Negatives are never the held-out item, a prefix item, or
    an item unseen in the prefixes.
    """
    rng = np.random.default_rng(seed)
    held = holdout.valid.sort_values("user", kind="stable")
    users, pos = held["user"].to_numpy(), held["item"].to_numpy()
    prefixes = holdout.histories("valid")
    pop = np.bincount(holdout.train["item"].to_numpy(), minlength=holdout.n_items).astype(float)
    allowed = pop > 0
    rows: list[tuple[int, int, int, str]] = []
    for lo in range(0, len(users), 512):
        us, ps = users[lo : lo + 512], pos[lo : lo + 512]
        hard = _hard_candidates(backbone, holdout, us, prefixes, ps, allowed, top_k)
        for row, (u, p) in enumerate(zip(us, ps, strict=True)):
            banned = set(prefixes[u].tolist()) | {int(p)}
            cands = [c for c in hard[row] if c not in banned] if hard is not None else []
            for c in rng.permutation(cands)[:n_hard] if cands else []:
                rows.append((int(u), int(p), int(c), "hard"))
                banned.add(int(c))
            for c in _pop_negatives(pop, banned, n_pop, rng):
                rows.append((int(u), int(p), int(c), "pop"))
    frame = pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
    pair_set = PairSet(holdout, frame)
    check_pairs(pair_set)
    return pair_set


def _hard_candidates(
    backbone: Recommender | None,
    holdout: Split,
    users: np.ndarray,
    prefixes: list[np.ndarray],
    pos: np.ndarray,
    allowed: np.ndarray,
    top_k: int,
) -> list[list[int]] | None:
    if backbone is None:
        return None
    scores = np.array(backbone.score(users, [prefixes[u] for u in users]), dtype=np.float64)
    scores[:, ~allowed] = -np.inf
    for row, u in enumerate(users):
        scores[row, prefixes[u]] = -np.inf
        scores[row, pos[row]] = -np.inf
    k = min(top_k, scores.shape[1] - 1)
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return [[int(c) for c in row if np.isfinite(s[c])] for row, s in zip(top, scores, strict=True)]


def _pop_negatives(
    pop: np.ndarray, banned: set[int], n: int, rng: np.random.Generator
) -> list[int]:
    out: list[int] = []
    prob = pop / pop.sum()
    for _ in range(20 * max(n, 1)):
        if len(out) >= n:
            break
        c = int(rng.choice(len(pop), p=prob))
        if c not in banned:
            out.append(c)
            banned.add(c)
    return out


def check_pairs(pair_set: PairSet, split: Split | None = None) -> None:
    """The leakage guard: raise `LeakageError` unless every pair is training-period only.

    Checks that each ``pos`` is the user's held-out training item, that each negative is seen
    in the prefixes and is neither a prefix item nor the held-out one, and — when the full
    ``split`` is given — that every (user, pos) is a training interaction of it and no pair
    item is an item that appears only in the validation or test period.
    """
    h, pairs = pair_set.holdout, pair_set.pairs
    if pairs.empty:
        return
    held = dict(zip(h.valid["user"].to_numpy(), h.valid["item"].to_numpy(), strict=True))
    wrong = [
        i
        for i, (u, p) in enumerate(zip(pairs["user"], pairs["pos"], strict=True))
        if held.get(u) != p
    ]
    if wrong:
        r = pairs.iloc[wrong[0]]
        raise LeakageError(f"pair {wrong[0]}: user {r.user}, pos {r.pos} is not the held-out item")
    seen = np.bincount(h.train["item"].to_numpy(), minlength=h.n_items) > 0
    if not seen[pairs["neg"].to_numpy()].all():
        raise LeakageError("a negative is not an item of the training prefixes")
    prefix_codes = set((h.train["user"] * h.n_items + h.train["item"]).tolist())
    neg_codes = (pairs["user"] * h.n_items + pairs["neg"]).tolist()
    if any(c in prefix_codes for c in neg_codes) or (pairs["neg"] == pairs["pos"]).any():
        raise LeakageError("a negative is one of the user's own training items")
    if split is not None:
        train_codes = set((split.train["user"] * split.n_items + split.train["item"]).tolist())
        pos_codes = (pairs["user"] * split.n_items + pairs["pos"]).tolist()
        if not all(c in train_codes for c in pos_codes):
            raise LeakageError("a held-out item is not a training interaction of the split")
        in_train = np.bincount(split.train["item"].to_numpy(), minlength=split.n_items) > 0
        items = np.concatenate([pairs["pos"].to_numpy(), pairs["neg"].to_numpy()])
        if not in_train[items].all():
            raise LeakageError("a pair item occurs only in the validation or test period")
