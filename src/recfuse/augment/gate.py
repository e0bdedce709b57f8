"""The governance gate of data refinement: every synthetic write and every drop is asked and logged.

Policy (`governance/policies/i2i/i2i.cedar`): synthetic interactions only for tail items, at most
20 per item counting earlier writes, never a (user, item) pair of the validation or test period;
drops (and down-weightings) only of training edges, at most half of them. Each decision and its outcome (the written
users, the dropped rows) is an entry of a tamper-evident `Ledger`, so the refined training set
can be rebuilt and audited from the log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recfuse.split import Split

POLICY_DIR = Path(__file__).resolve().parents[1] / "governance" / "policies" / "i2i"


def pair_codes(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """One int64 code per (user, item) pair."""
    return np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64)


class RefinementGate:
    """Governor + ledger for one refinement run (one dataset, seed and teacher).

    Args:
        split: its validation and test pairs are the ones no write may touch.
        ledger_path: the SQLite ledger (a new run starts a new file).
        tail: bool [n_items], which items count as long tail.
    """

    def __init__(self, split: Split, ledger_path: str | Path, tail: np.ndarray) -> None:
        from recfuse.governance import Governor, Ledger, Policies

        path = Path(ledger_path)
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)  # the ledger records this run's refinement only
        self.ledger = Ledger(path)
        self.governor = Governor(self.ledger, Policies.from_dir(POLICY_DIR), actor="llm-i2i")
        held = pd.concat([split.valid, split.test])
        self.heldout = np.unique(pair_codes(held["user"], held["item"], split.n_items))
        self.n_items = split.n_items
        self.n_real = np.bincount(split.train["item"], minlength=split.n_items)
        #: synthetic edges written so far, per source (each source builds its own data set)
        self.n_synthetic: dict[str, np.ndarray] = {}
        self.tail = tail
        self.denied = 0

    def heldout_pairs(self, users: np.ndarray, items: np.ndarray) -> int:
        return int(np.isin(pair_codes(users, items, self.n_items), self.heldout).sum())

    def write_synthetic(self, item: int, users: np.ndarray, source: str) -> np.ndarray:
        """Ask to add (user, ``item``) for ``users``; returns the users written (none if denied)."""
        from recfuse.governance import PolicyDenied, Resource

        written_so_far = self.n_synthetic.setdefault(source, np.zeros(self.n_items, np.int64))
        attrs = {"n_real": int(self.n_real[item]), "n_synthetic": int(written_so_far[item]),
                 "tail": bool(self.tail[item])}  # fmt: skip
        context = {"requested": len(users),
                   "heldout_pairs": self.heldout_pairs(users, np.full(len(users), item))}  # fmt: skip
        try:
            written = self.governor.run(
                "write_synthetic", Resource("Item", str(item), attrs), lambda: users.tolist(),
                context=context, inputs={"item": item, "users": users.tolist(), "source": source},
            )  # fmt: skip
        except PolicyDenied:
            self.denied += 1
            return np.zeros(0, dtype=np.int64)
        written_so_far[item] += len(written)
        return np.asarray(written, dtype=np.int64)

    def drop_edges(
        self, edges: pd.DataFrame, drop: np.ndarray, source: str, factor: float = 0.0
    ) -> pd.DataFrame:
        """Ask to drop the rows ``drop`` (bool [len(edges)]), or with ``factor`` > 0 to multiply
        their weight by it (down-weighting, action ``downweight_edges``); returns the new edges
        (the old ones if denied)."""
        from recfuse.governance import PolicyDenied, Resource

        gone = edges[drop]
        context = {"requested": int(drop.sum()),
                   "heldout_pairs": self.heldout_pairs(gone["user"], gone["item"])}  # fmt: skip
        pairs = gone[["user", "item"]].to_numpy().tolist()
        action = "drop_edges" if factor == 0.0 else "downweight_edges"
        try:
            self.governor.run(
                action, Resource("EdgeSet", source, {"n_edges": len(edges)}),
                lambda: {"changed": len(pairs), "factor": factor}, context=context,
                inputs={"pairs": pairs, "source": source, "factor": factor},
            )  # fmt: skip
        except PolicyDenied:
            self.denied += 1
            return edges
        if factor == 0.0:
            return edges[~drop].reset_index(drop=True)
        out = edges.copy()
        out.loc[drop, "weight"] = out.loc[drop, "weight"] * factor
        return out

    def close(self) -> None:
        self.ledger.close()
