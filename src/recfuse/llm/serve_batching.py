"""Windowed batching for `recfuse llm serve`: concurrent requests share forward passes.

One thread owns the model. A request becomes a `Ticket` (its prompts x ``n`` rows and decoding
parameters). When the thread is free it takes the oldest ticket, waits for company (until the
batch is full, or as many rows as the last batch are back and nobody came for ``window_s``; at
most ``4 * window_s`` or a quarter of the last batch's time), and decodes every waiting greedy ticket with the same parameters in one batch of at most
``max_batch`` rows, through `recfuse.llm.base.generate_streaming` — so it works with any `LLM`
backend, and backends that stream give token-by-token text and stop a row whose client left.

Sampled requests (temperature > 0) are decoded in a batch of their own, so a request with a
``seed`` gets the same answer whoever else is waiting. A request waits at most for the batch
in flight, and that batch is bounded by ``ServeLimits.max_tokens``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from recfuse.errors import RecfuseError
from recfuse.llm.base import LLM, Generation, GenerationParams, Prompt, generate_streaming
from recfuse.llm.serve_schema import APIError

log = logging.getLogger(__name__)


class Ticket:
    """One request's work and the channel its results come back on.

    Events put on ``events`` (an asyncio queue of the request's event loop):
    ``("text", row, delta)`` while streaming, then ``("done", result)`` or ``("error", APIError)``.
    ``merge_key`` is None for tickets that must run alone; ``work`` (a callable) replaces
    generation for model work that is not decoding (echoed log-probabilities).
    """

    def __init__(
        self,
        prompts: list[Prompt],
        params: GenerationParams,
        stream: bool = False,
        merge_key: Hashable | None = None,
        work: Callable[[], Any] | None = None,
    ) -> None:
        self.prompts, self.params, self.stream = prompts, params, stream
        self.merge_key, self.work = merge_key, work
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.cancelled = threading.Event()

    @property
    def rows(self) -> int:
        return max(1, len(self.prompts))

    def put(self, *event: Any) -> None:
        # A closed loop means the request is gone: nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class Batcher:
    """The model thread: takes tickets in arrival order and runs compatible ones together."""

    def __init__(self, llm: LLM, max_batch: int, window_s: float, max_queue: int) -> None:
        self.llm, self.max_batch, self.window_s, self.max_queue = (
            llm,
            max_batch,
            window_s,
            max_queue,
        )
        self.pending: list[Ticket] = []
        self.cond = threading.Condition()
        self.stopping = False
        self.last_arrival = 0.0
        self.expected = 1  # rows of the last batch: how many clients are likely to come back
        self.last_batch_s = 0.0
        self.stats = {
            "batches": 0,
            "rows": 0,
            "largest_batch": 0,
            "completion_tokens": 0,
            "cancelled": 0,
        }
        self.thread = threading.Thread(target=self._loop, name="recfuse-batcher", daemon=True)
        self.thread.start()

    def submit(self, ticket: Ticket) -> None:
        with self.cond:
            if self.stopping:
                raise APIError(503, "the server is shutting down", None, None, "server_error")
            queued = sum(t.rows for t in self.pending)
            if queued + ticket.rows > self.max_queue:
                raise APIError(
                    429,
                    f"{queued} rows are waiting (limit {self.max_queue}); retry later",
                    None,
                    "rate_limit_exceeded",
                    "rate_limit_error",
                )
            self.pending.append(ticket)
            self.last_arrival = time.monotonic()
            self.cond.notify_all()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Refuse new work, fail queued tickets with 503 and stop the batch in flight."""
        with self.cond:
            self.stopping = True
            dropped, self.pending = self.pending, []
            self.cond.notify_all()
        for ticket in dropped:
            ticket.put("error", APIError(503, "the server is shutting down", kind="server_error"))
        self.thread.join(timeout_s)

    def _compatible(self, first: Ticket) -> list[Ticket]:
        """The oldest ticket and the waiting ones that may share its batch (FIFO)."""
        batch, rows = [first], first.rows
        if first.merge_key is None:
            return batch
        for ticket in self.pending[1:]:
            if ticket.merge_key == first.merge_key and rows + ticket.rows <= self.max_batch:
                batch.append(ticket)
                rows += ticket.rows
        return batch

    def _gather(self, first: Ticket) -> None:
        """Wait (holding ``cond``) for company for ``first``: until the batch is full, or the
        clients of the last batch are back and nobody arrived for ``window_s``. In all at most
        ``4 * window_s``, or a quarter of the last batch's decoding time if that is longer: a
        client in a loop sends again as soon as it has its answer, and on a busy machine that
        takes a while; waiting for it costs less than a batch half empty from then on.
        """
        latest = time.monotonic() + max(4 * self.window_s, 0.25 * self.last_batch_s)
        expected = min(self.max_batch, max(1, self.expected))
        while not self.stopping:
            rows = sum(t.rows for t in self._compatible(first))
            now = time.monotonic()
            quiet = self.last_arrival + self.window_s - now
            if rows >= self.max_batch or now >= latest or (rows >= expected and quiet <= 0):
                return
            self.cond.wait(
                max(0.001, min(latest - now, quiet) if rows >= expected else latest - now)
            )

    def _take(self) -> list[Ticket] | None:
        with self.cond:
            while True:
                self.pending = [t for t in self.pending if not t.cancelled.is_set()]
                if self.stopping:
                    return None
                if self.pending:
                    break
                self.cond.wait()
            first = self.pending[0]
            if first.merge_key is not None:
                self._gather(first)
            batch = self._compatible(first)
            taken = {id(t) for t in batch}
            self.pending = [t for t in self.pending if id(t) not in taken]
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._run(batch)
            except Exception as exc:  # never let one batch kill the model thread
                log.exception("batch failed")
                error = (
                    APIError(400, str(exc), code="invalid_value")
                    if isinstance(exc, RecfuseError)
                    else APIError(500, f"{type(exc).__name__}: {exc}", kind="server_error")
                )
                for ticket in batch:
                    ticket.put("error", error)

    def _run(self, batch: list[Ticket]) -> None:
        if batch[0].work is not None:
            batch[0].put("done", batch[0].work())
            return
        prompts = [p for t in batch for p in t.prompts]
        owners = [(t, j) for t in batch for j in range(len(t.prompts))]

        def on_text(row: int, delta: str) -> bool:
            ticket, j = owners[row]
            if ticket.cancelled.is_set() or self.stopping:
                return False
            if ticket.stream:
                ticket.put("text", j, delta)
            return True

        self.expected = len(prompts)
        started = time.monotonic()
        gens: list[Generation] = generate_streaming(self.llm, prompts, batch[0].params, on_text)
        self.last_batch_s = time.monotonic() - started
        self.stats["batches"] += 1
        self.stats["rows"] += len(prompts)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(prompts))
        self.stats["completion_tokens"] += sum(g.completion_tokens for g in gens)
        self.stats["cancelled"] += sum(t.rows for t in batch if t.cancelled.is_set())
        start = 0
        for ticket in batch:
            mine, start = gens[start : start + ticket.rows], start + ticket.rows
            if self.stopping:
                ticket.put(
                    "error", APIError(503, "the server is shutting down", kind="server_error")
                )
            else:
                ticket.put("done", mine)
