"""Executors run batches of work items through a backend: in this process, or on Ray actors.

Either way the executor only computes; the job's driver alone writes the cache, so there is
one SQLite writer however many workers run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from recfuse.llm.backend_spec import BackendSpec
from recfuse.llm.base import LLM
from recfuse.llm.work import ItemResult, TaskSpec, WorkItem, process_batch


class LocalExecutor:
    """Batches one after another through one backend in this process."""

    name = "local"

    def __init__(self, llm: LLM):
        self.llm = llm

    def map(self, batches: Sequence[list[WorkItem]], task: TaskSpec) -> Iterator[list[ItemResult]]:
        for batch in batches:
            yield process_batch(self.llm, batch, task)

    def close(self) -> None:
        return None


def _worker_class() -> Any:
    import ray

    @ray.remote(num_cpus=1)
    class LLMWorker:
        """One backend per actor; gets batches, returns results (never touches the cache)."""

        def __init__(self, spec_json: str, threads: int):
            import torch

            torch.set_num_threads(threads)
            self.llm = BackendSpec.model_validate_json(spec_json).build()
            self.pid = os.getpid()

        def run(self, batch: list[WorkItem], task: TaskSpec) -> tuple[int, list[ItemResult]]:
            return self.pid, process_batch(self.llm, batch, task)

    return LLMWorker


class RayExecutor:
    """``workers`` Ray actors, each with its own backend, two batches in flight per actor.

    Starts a local Ray (``ray.init(num_cpus=workers)``) unless one is already running; with
    ``address`` it joins an existing cluster instead.
    """

    name = "ray"

    def __init__(
        self,
        spec: BackendSpec,
        workers: int = 2,
        threads_per_worker: int = 1,
        address: str | None = None,
    ):
        import ray

        self._started = False
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in ("RECFUSE_CACHE", "HF_HUB_OFFLINE") if k in os.environ}
            env.update(
                OMP_NUM_THREADS=str(threads_per_worker),
                MKL_NUM_THREADS=str(threads_per_worker),
                TOKENIZERS_PARALLELISM="false",
            )
            ray.init(
                address=address,
                num_cpus=None if address else workers,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": env},
            )
            self._started = True
        worker = _worker_class()
        self.actors = [
            worker.remote(spec.model_dump_json(), threads_per_worker) for _ in range(workers)
        ]
        self.worker_pids: set[int] = set()

    def map(self, batches: Sequence[list[WorkItem]], task: TaskSpec) -> Iterator[list[ItemResult]]:
        import ray

        queue = list(reversed(batches))
        pending: dict[Any, Any] = {}

        def submit(actor: Any) -> None:
            if queue:
                pending[actor.run.remote(queue.pop(), task)] = actor

        for actor in self.actors:
            submit(actor)
            submit(actor)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(ready[0])
            pid, results = ray.get(ready[0])
            self.worker_pids.add(pid)
            submit(actor)
            yield results

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        if self._started:
            ray.shutdown()
