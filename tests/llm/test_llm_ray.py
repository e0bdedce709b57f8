"""The Ray executor on 2 local CPUs: workers compute, only the driver writes the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from recfuse.llm import (
    BackendSpec,
    GenerationParams,
    LLMCache,
    LLMJob,
    PromptRecord,
    PromptTemplate,
)


@pytest.mark.slow
@pytest.mark.ray
def test_ray_executor_on_two_cpus(server_url: str, tmp_path: Path) -> None:
    """Two Ray actors, each with its own HTTP backend, against the real SmolLM2 server.

    (The actors build their backend from the same `BackendSpec` a transformers job uses; the
    served model keeps this test from loading SmolLM2 twice more on a 2-core machine.)
    """
    pytest.importorskip("ray")
    titles = ["Dune", "Emma", "Walden", "Hamlet", "Solaris", "Kindred"]
    records = [PromptRecord(str(i), {"title": t}) for i, t in enumerate(titles)]
    template = PromptTemplate(user="In one short sentence, what is this book about?\n{title}")
    spec = BackendSpec(
        kind="http", base_url=server_url, model="smollm2", batch_size=2, concurrency=1
    )
    db = tmp_path / "c.sqlite"
    params = GenerationParams(max_tokens=5)
    job = LLMJob("ray-job", records, template, spec, params=params, cache=db, progress=False)
    report = job.run(executor="ray", workers=2)
    assert report.executor == "ray"
    assert report.completed + report.failed == len(titles)
    assert report.completion_tokens > 0
    with LLMCache(db) as cache:
        rows = list(cache.job_outputs("ray-job"))
        assert [r["id"] for r in rows] == [str(i) for i in range(len(titles))]
        assert all(r["status"] in ("ok", "failed") and r["raw_text"] for r in rows)
        assert cache.job_runs("ray-job")[-1]["executor"] == "ray"
    # A local rerun of the same job finds every answer the Ray workers produced.
    again = LLMJob("ray-job", records, template, spec, params=params, cache=db, progress=False)
    assert again.run().already_done == len(titles)
