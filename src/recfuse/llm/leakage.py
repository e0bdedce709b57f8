"""Leakage guard for prompts built from user histories: only the training period may reach an LLM.

LLM outputs are cached and shared by every stage of an experiment, so a prompt that mentions a
validation or test interaction would leak the answer into training features, scores or
synthetic data. Prompts therefore draw histories through `history_for_prompt`, and any job that
carries (user, item) pairs checks them with `check_pairs_in_train` before a single call.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from recfuse.errors import LeakageError
from recfuse.split import Split


def _codes(frame_users: np.ndarray, frame_items: np.ndarray, n_items: int) -> np.ndarray:
    return frame_users.astype(np.int64) * np.int64(n_items) + frame_items.astype(np.int64)


def history_for_prompt(
    split: Split, user: int, stage: str = "train", max_items: int | None = None
) -> np.ndarray:
    """Time-ordered item indices of ``user``'s training-period interactions (the last
    ``max_items`` of them when given).

    ``stage`` may be ``"train"`` or ``"valid"`` (at the validation stage the visible history is
    exactly the training period); ``"test"`` would include validation interactions and raises
    `LeakageError`, as does any other value.
    """
    if stage not in ("train", "valid"):
        raise LeakageError(
            f"history_for_prompt(stage={stage!r}): LLM prompts may use only the training period; "
            "the test-stage history contains validation interactions"
        )
    if not 0 <= user < split.n_users:
        raise LeakageError(
            f"history_for_prompt: user {user} is not in the split (0..{split.n_users - 1})"
        )
    train = split.train
    users = train["user"].to_numpy()
    rows = np.flatnonzero(users == user)
    order = np.argsort(train["time"].to_numpy()[rows], kind="stable")
    items = train["item"].to_numpy()[rows[order]]
    if max_items is None:
        return items
    return items[-max_items:] if max_items > 0 else items[:0]


def check_pairs_in_train(split: Split, pairs: Iterable[tuple[int, int]] | np.ndarray) -> None:
    """Raise `LeakageError` unless every (user, item) pair is a training-period interaction.

    The message names the first offending pair and the period it comes from.
    """
    arr = np.asarray(list(pairs) if not isinstance(pairs, np.ndarray) else pairs, dtype=np.int64)
    if arr.size == 0:
        return
    arr = arr.reshape(-1, 2)
    n_items = max(split.n_items, 1)
    wanted = _codes(arr[:, 0], arr[:, 1], n_items)
    train = _codes(split.train["user"].to_numpy(), split.train["item"].to_numpy(), n_items)
    bad = ~np.isin(wanted, train)
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    user, item = (int(v) for v in arr[first])
    period = "no period of the split"
    for name in ("valid", "test"):
        frame = getattr(split, name)
        if np.isin(
            wanted[first], _codes(frame["user"].to_numpy(), frame["item"].to_numpy(), n_items)
        ):
            period = f"the {name} period"
            break
    raise LeakageError(
        f"{int(bad.sum())} of {len(arr)} (user, item) pairs are not training interactions; "
        f"first: user {user}, item {item} (from {period}). LLM prompts may use training history only."
    )
