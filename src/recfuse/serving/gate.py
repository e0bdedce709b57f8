"""Every served request through the Cedar policy gate and into the run's ledger.

One `Governor.run` per request: the ``recommend`` (or ``explain``) decision on the user, with
the request's size and the client's recent rate as context; inside it, one batched
``return_item`` decision per candidate item, so a policy can keep items (blocked ones, items the
user has) out of every answer. The ledger entry holds the client, the request's digest, the
decision and — as a content blob — the items returned; ``recfuse ledger verify`` checks it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from recfuse.governance.governor import Governor
from recfuse.governance.ledger import Ledger
from recfuse.governance.policy import Policies, Resource

T = TypeVar("T")
POLICY_DIR = Path(__file__).parent / "policies"
RATE_WINDOW_S = 60.0


class RateWindow:
    """Requests per client in the last ``seconds`` (a deque of timestamps per client)."""

    def __init__(self, seconds: float = RATE_WINDOW_S) -> None:
        self.seconds = seconds
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, client: str) -> int:
        """Count this request and return how many the client made in the window (it included)."""
        now = time.monotonic()
        with self._lock:
            events = self._events.setdefault(client, deque())
            events.append(now)
            while events and events[0] < now - self.seconds:
                events.popleft()
            return len(events)


class ServingGate:
    """The policy gate and ledger of one server; ``enabled=False`` serves ungated (benchmarks).

    Args:
        ledger_path: the run's ledger (created when missing).
        policy_dir: a folder of ``.cedar`` files (+ one ``.cedarschema``); default: the shipped
            serving policy (bounded k, a rate limit, never an item the user has).
        checkpoint_every: sign a checkpoint after this many entries (and at `close`).
    """

    def __init__(
        self,
        ledger_path: str | Path,
        policy_dir: str | Path | None = None,
        enabled: bool = True,
        checkpoint_every: int = 500,
    ) -> None:
        self.enabled = enabled
        self.rate = RateWindow()
        self.policies = Policies.from_dir(policy_dir or POLICY_DIR)
        self.ledger: Ledger | None = None
        self.governor: Governor | None = None
        if enabled:
            self.ledger = Ledger(ledger_path, checkpoint_every=checkpoint_every)
            self.governor = Governor(
                self.ledger, self.policies, actor="recfuse-serve", keep_content=True
            )

    def run(
        self,
        action: str,
        client: str,
        user: Resource,
        context: dict[str, Any],
        request: dict[str, Any],
        fn: Callable[[], T],
    ) -> T:
        """Gate ``fn`` as ``action`` by ``client`` on ``user``; raises `PolicyDenied` (logged)."""
        if self.governor is None:
            return fn()
        context = {**context, "recent_requests": self.rate.hit(client)}
        return self.governor.run(action, user, fn, context=context, actor=client, inputs=request)

    def allowed_items(self, client: str, items: list[Resource]) -> list[bool]:
        """Per candidate item: may it be returned? (All true when the gate is off.)"""
        if not self.enabled:
            return [True] * len(items)
        return self.policies.authorize_many(client, "return_item", items)

    def close(self) -> None:
        """Sign a final checkpoint so every entry is covered, then close the ledger."""
        if self.ledger is not None:
            if self.ledger.size() > 0:
                self.ledger.checkpoint()
            self.ledger.close()
            self.ledger = None
