"""Worked example: a governed agent that proposes catalogue actions on a real dataset.

The agent may (1) read interactions of a split part, (2) promote an item, (3) write synthetic
interactions for a long-tail item, (4) publish a slate. The policies in ``policies/catalogue.cedar``
say: never read the test split; no promotion of items with fewer than 10 real interactions; no
more than 20 synthetic interactions per item (counting earlier runs); only tail items get synthetic
interactions; a slate has at most 20 real items and gives at least 20% of its slots to the tail.

The agent itself is deliberately naive (it reaches for the freshest data, promotes what trends,
asks for as many synthetic interactions as it likes): the policies, not the agent's good manners,
keep it in bounds. It only ever holds a `GovernedToolbox`; the `Split` lives inside the tools, so
the test interactions are reachable only through a gated call that the policy refuses.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recfuse.data.dataset import Dataset
from recfuse.governance.agent import Agent, Outcome, Proposal
from recfuse.governance.ledger import utc_now
from recfuse.governance.policy import Resource
from recfuse.governance.toolbox import GovernedToolbox
from recfuse.split.split import Split

TAIL_BELOW = 10  # an item with fewer real (training) interactions is a tail item
STORE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS promotions (id INTEGER PRIMARY KEY, item INTEGER NOT NULL, "
    "score REAL NOT NULL, reason TEXT NOT NULL, time TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS synthetic (id INTEGER PRIMARY KEY, user INTEGER NOT NULL, "
    "item INTEGER NOT NULL, time TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS slates (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "items TEXT NOT NULL, time TEXT NOT NULL)",
)


class CatalogueStore:
    """The catalogue's writable state (promotions, synthetic interactions, slates) in SQLite."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        for statement in STORE_SCHEMA:
            self._conn.execute(statement)

    def close(self) -> None:
        self._conn.close()

    def synthetic_count(self, item: int) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM synthetic WHERE item = ?", (item,))
            return int(row.fetchone()[0])

    def add_synthetic(self, item: int, users: list[int]) -> None:
        now = utc_now()
        with self._lock:
            self._conn.executemany(
                "INSERT INTO synthetic (user, item, time) VALUES (?, ?, ?)",
                [(u, item, now) for u in users],
            )

    def promote(self, item: int, score: float, reason: str) -> int:
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO promotions (item, score, reason, time) VALUES (?, ?, ?, ?)",
                (item, score, reason, utc_now()),
            )
            return int(cur.lastrowid or 0)

    def publish(self, name: str, items: list[int]) -> int:
        import json

        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO slates (name, items, time) VALUES (?, ?, ?)",
                (name, json.dumps(items), utc_now()),
            )
            return int(cur.lastrowid or 0)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                t: int(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("promotions", "synthetic", "slates")
            }


def catalogue_tools(
    toolbox: GovernedToolbox, dataset: Dataset, split: Split, store: CatalogueStore
) -> GovernedToolbox:
    """Register the four catalogue tools on ``toolbox``; the split is reachable only through them."""
    n_items = split.n_items
    real = np.bincount(split.train["item"].to_numpy(), minlength=n_items)
    split_id = f"{dataset.name}/{split.protocol}/seed{split.seed}"
    users_of: dict[int, np.ndarray] = {}
    train_users = split.train["user"].to_numpy()
    train_items = split.train["item"].to_numpy()
    order = np.argsort(train_items, kind="stable")
    bounds = np.searchsorted(train_items[order], np.arange(n_items + 1))

    def users_of_item(item: int) -> np.ndarray:
        if item not in users_of:
            users_of[item] = np.unique(train_users[order[bounds[item] : bounds[item + 1]]])
        return users_of[item]

    histories = split.histories("valid")

    def item_resource(item: int, **_: Any) -> Resource:
        if not 0 <= int(item) < n_items:
            raise ValueError(f"item {item} is not in the catalogue (0..{n_items - 1})")
        return Resource(
            "Item",
            str(int(item)),
            {"n_real": int(real[item]), "n_synthetic": store.synthetic_count(int(item))},
        )

    def split_resource(part: str, **_: Any) -> Resource:
        return Resource("Split", f"{split_id}/{part}", {"dataset": dataset.name, "part": str(part)})

    @toolbox.tool(resource=split_resource, name="read_split")
    def read_split(part: Literal["train", "valid", "test"]) -> dict[str, Any]:
        """Interaction counts per item in one part of the split (train, valid or test)."""
        frame = getattr(split, part)  # the only place a part is read, and only once allowed
        counts = np.bincount(frame["item"].to_numpy(), minlength=n_items)
        nonzero = np.flatnonzero(counts)
        return {
            "part": part,
            "n_interactions": int(len(frame)),
            "item_counts": {str(int(i)): int(counts[i]) for i in nonzero},
        }

    @toolbox.tool(
        resource=item_resource,
        context=lambda item, score, reason="": {"score": float(score)},
        name="promote_item",
    )
    def promote_item(item: int, score: float, reason: str = "") -> dict[str, Any]:
        """Promote a catalogue item (it will lead the next slates)."""
        return {"item": item, "promotion": store.promote(item, score, reason)}

    @toolbox.tool(
        resource=item_resource,
        context=lambda item, n: {"requested": int(n)},
        name="write_synthetic",
    )
    def write_synthetic(item: int, n: int) -> dict[str, Any]:
        """Write ``n`` synthetic interactions for a tail item: the users most often co-interacting
        (two hops through training interactions) who have not seen it yet."""
        seed_users = users_of_item(item)
        neighbours = np.concatenate([histories[u] for u in seed_users] + [np.empty(0, np.int64)])
        neighbours = neighbours.astype(np.int64)
        neighbours = neighbours[neighbours != item]
        candidates = (
            np.concatenate([users_of_item(int(i)) for i in np.unique(neighbours)])
            if len(neighbours)
            else np.array([], dtype=np.int64)
        )
        cand, votes = np.unique(candidates, return_counts=True)
        keep = ~np.isin(cand, seed_users)
        cand, votes = cand[keep], votes[keep]
        chosen = cand[np.lexsort((cand, -votes))][:n].tolist()
        store.add_synthetic(item, chosen)
        return {"item": item, "written": len(chosen), "users": chosen}

    def slate_context(items: list[int], name: str) -> dict[str, Any]:
        size = len(items)
        known = [i for i in items if 0 <= i < n_items]
        n_tail = sum(1 for i in known if real[i] < TAIL_BELOW)
        return {
            "size": size,
            "n_tail": n_tail,
            "tail_share": n_tail / size if size else 0.0,
            "n_unknown": size - len(known),
        }

    @toolbox.tool(
        resource=lambda items, name: Resource("Slate", name),
        context=slate_context,
        name="publish_slate",
    )
    def publish_slate(items: list[int], name: str) -> dict[str, Any]:
        """Publish a ranked slate of items under ``name``."""
        return {"slate": store.publish(name, items), "size": len(items)}

    return toolbox


class CatalogueAgent(Agent):
    """Proposes promotions, synthetic interactions and a slate from what it may read.

    Round 1: perceive (it first asks for the test part, the freshest data; the policy refuses, so
    it reads train and valid), then promote the most trending items, ask for synthetic
    interactions to lift tail items towards the head, and publish a popularity slate.
    Later rounds re-plan only what was denied: halve refused synthetic requests, and swap tail
    items into a refused slate.
    """

    def __init__(
        self,
        toolbox: GovernedToolbox,
        name: str = "catalogue-agent",
        n_promote: int = 6,
        n_tail: int = 6,
        slate_size: int = 10,
    ) -> None:
        super().__init__(toolbox, name)
        self.n_promote = n_promote
        self.n_tail = n_tail
        self.slate_size = slate_size
        self.observation: dict[str, Any] = {}
        self.perception: list[Outcome] = []

    def perceive(self, previous: list[Outcome]) -> dict[str, Any]:
        if self.observation:
            return self.observation
        counts: dict[str, dict[str, int]] = {}
        for part in ("test", "valid", "train"):
            outcome = self.use("read_split", part=part)
            self.perception.append(outcome)
            if outcome.allowed:
                counts[part] = outcome.result["item_counts"]
        self.observation = counts
        return counts

    def conceptualize(self, observation: dict[str, Any], previous: list[Outcome]) -> list[Proposal]:
        train = {int(k): v for k, v in observation.get("train", {}).items()}
        recent = {int(k): v for k, v in observation.get("valid", {}).items()}
        if not previous:
            return self._first_plan(train, recent)
        return self._replan(train, previous)

    def _first_plan(self, train: dict[int, int], recent: dict[int, int]) -> list[Proposal]:
        trend = {i: c / np.sqrt(train.get(i, 0) + 1.0) for i, c in recent.items()}
        trending = sorted(trend, key=lambda i: (-trend[i], i))[: self.n_promote]
        proposals = [
            Proposal(
                "promote_item",
                {"item": i, "score": round(float(trend[i]), 4), "reason": "trending in valid"},
                f"{recent[i]} recent vs {train.get(i, 0)} training interactions",
            )
            for i in trending
        ]
        target = int(np.percentile(list(train.values()), 95)) if train else 0
        tail = [i for i, c in train.items() if c < TAIL_BELOW]
        tail.sort(key=lambda i: (-recent.get(i, 0), train[i], i))
        for i in tail[: self.n_tail]:
            want = max(1, target - train[i])
            proposals.append(
                Proposal(
                    "write_synthetic", {"item": i, "n": want}, f"lift to {target} interactions"
                )
            )
        head = sorted(train, key=lambda i: (-(train[i] + recent.get(i, 0)), i))
        slate = head[: self.slate_size]
        self._tail_for_slate = tail[: self.n_tail]
        proposals.append(
            Proposal("publish_slate", {"items": slate, "name": "home"}, "most popular items")
        )
        return proposals

    def _replan(self, train: dict[int, int], previous: list[Outcome]) -> list[Proposal]:
        proposals = []
        for outcome in previous:
            if outcome.allowed:
                continue
            p = outcome.proposal
            if p.tool == "write_synthetic" and p.arguments["n"] > 1:
                half = {**p.arguments, "n": p.arguments["n"] // 2}
                proposals.append(Proposal("write_synthetic", half, "refused: ask for half"))
            elif p.tool == "publish_slate":
                items = list(p.arguments["items"])
                tail = [i for i in self._tail_for_slate if i not in items]
                n_swap = max(1, int(np.ceil(0.2 * len(items))))
                items = items[: len(items) - n_swap] + tail[:n_swap]
                proposals.append(
                    Proposal("publish_slate", {**p.arguments, "items": items}, "refused: add tail")
                )
        return proposals
