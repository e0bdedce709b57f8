"""Shared test setup: one thread per library (the CI machine has 2 cores) and a private cache."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Caches (features, LLM outputs, dense model copies) go to one folder per test session."""
    if "RECFUSE_CACHE" not in os.environ:
        os.environ["RECFUSE_CACHE"] = str(tmp_path_factory.mktemp("recfuse-cache"))
