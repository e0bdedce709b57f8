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
def test_ray_executor_on_two_cpus(smollm2, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    titles = ["Dune", "Emma", "Walden", "Hamlet", "Solaris", "Kindred"]
    records = [PromptRecord(str(i), {"title": t}) for i, t in enumerate(titles)]
    template = PromptTemplate(user="In one short sentence, what is this book about?\n{title}")
    spec = BackendSpec(kind="transformers", model="smollm2", batch_size=2, threads=1)
    cache = LLMCache(tmp_path / "c.sqlite")
    params = GenerationParams(max_tokens=5)
    job = LLMJob("ray-job", records, template, spec, params=params, cache=cache, progress=False)
    report = job.run(executor="ray", workers=2)
    assert report.executor == "ray"
    assert report.completed + report.failed == len(titles)
    assert report.completion_tokens > 0
    rows = list(cache.job_outputs("ray-job"))
    assert len(rows) == len(titles) and all(r["status"] in ("ok", "failed") for r in rows)
    assert all(r["raw_text"] for r in rows)
    # The keys the driver computed without loading a model match a locally built backend's.
    local = LLMJob(
        "ray-job", records, template, smollm2, params=params, cache=cache, progress=False
    )
    assert [w.key for _, w in local.plan()] == [w.key for _, w in job.plan()]
    assert local.run().already_done == len(titles)
