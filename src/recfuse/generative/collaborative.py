"""Collaborative item embeddings for CEMG's fusion, learned from the training period only.

The semantic IDs are computed once and then used at the validation *and* the test stage, so the
collaborative model behind them must not see a single validation or test interaction — not even
through early stopping. `inner_split` therefore carves its own validation set out of
``split.train`` (each user's last training item), and the collaborative model is fit on that
inner split; ``split.valid`` and ``split.test`` are never read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recfuse.errors import ConfigError
from recfuse.evaluation.validation import fit_validated
from recfuse.models import BPR, SASRec, TrainConfig
from recfuse.split import Split

COLLAB_MODELS = ("sasrec", "bpr")


def inner_split(split: Split) -> Split:
    """A split built from ``split.train`` alone: per user, the last training interaction becomes
    validation (users with at least 2 training items); the test part is empty."""
    train = split.train.sort_values(["user", "time"], kind="stable").reset_index(drop=True)
    grouped = train.groupby("user")
    from_end = grouped.cumcount(ascending=False).to_numpy()
    size = grouped["item"].transform("size").to_numpy()
    held = (from_end == 0) & (size >= 2)
    return Split(
        protocol="inner_leave_one_out_of_train",
        seed=split.seed,
        n_users=split.n_users,
        n_items=split.n_items,
        train=train[~held].reset_index(drop=True),
        valid=train[held].reset_index(drop=True),
        test=pd.DataFrame({c: pd.Series(dtype=train[c].dtype) for c in train.columns}),
        params={"outer_protocol": split.protocol},
    )


def collaborative_embeddings(
    split: Split,
    model: str = "sasrec",
    dim: int = 64,
    seed: int = 0,
    max_seconds: float | None = None,
    epochs: int = 200,
    valid_users: int | None = 2000,
    progress: bool = False,
    device: str = "cpu",
) -> tuple[np.ndarray, dict[str, float]]:
    """Item embeddings [n_items, dim] from a SASRec (full cross-entropy) or BPR model.

    Only ``split.train`` is used (see `inner_split`). Returns the embeddings and a small report
    (inner validation NDCG@10, training seconds).
    """
    if model not in COLLAB_MODELS:
        raise ConfigError(f"collab model {model!r} is not one of {', '.join(COLLAB_MODELS)}")
    inner = inner_split(split)
    train = TrainConfig(
        seed=seed,
        max_seconds=max_seconds,
        epochs=epochs,
        valid_users=valid_users,
        progress=progress,
        device=device,
    )
    if model == "sasrec":
        sasrec = SASRec(dim=dim, loss="ce", train=train)
        fit_validated(sasrec, inner)
        table = sasrec.item_table()[:-1].detach().cpu().numpy()
        fitted: SASRec | BPR = sasrec
    else:
        bpr = BPR(dim=dim, train=train)
        fit_validated(bpr, inner)
        table = bpr.net_.items.weight.detach().cpu().numpy()
        fitted = bpr
    report = {"inner_valid_ndcg10": fitted.best_valid_, "seconds": fitted.train_seconds_}
    return np.ascontiguousarray(table, dtype=np.float32), report
