"""`BackendSpec`: which LLM backend a job uses, as plain config that can travel to Ray workers."""

from __future__ import annotations

import importlib.util
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recfuse.errors import ConfigError
from recfuse.llm.base import LLM


def job_threads() -> int:
    """Threads this job may use: ``RECFUSE_THREADS`` (set by ``shared/tools/heavy``), else 1.
    A local backend left at its default runs on one thread however many cores the job has."""
    return int(os.environ.get("RECFUSE_THREADS", "1"))


class BackendSpec(BaseModel):
    """The ``backend:`` block of a job YAML.

    ``kind: auto`` (default) is ``ctranslate2`` where the package is installed, else
    ``transformers``. ``ctranslate2``, ``transformers`` and ``llamacpp`` use ``model``
    (``smollm2``, a local folder or a ``.gguf`` path); ``kind: http`` uses ``base_url`` +
    ``model`` (the server's name for it), with the API key read from the environment variable
    named by ``api_key_env``. ``batch_size`` defaults to 32 for ctranslate2 and 8 otherwise.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["auto", "ctranslate2", "transformers", "http", "llamacpp"] = "auto"
    model: str = "smollm2"
    batch_size: int | None = Field(default=None, ge=1, le=512)
    threads: int | None = Field(default=None, ge=1)
    # ctranslate2
    compute_type: Literal["int8", "float32", "int8_float32"] = "int8"
    inter_threads: int = Field(default=1, ge=1, le=64)
    prefix_cache: bool = True
    shared_prefixes: bool = True
    prefix_cache_mb: float = Field(default=256.0, gt=0)
    # http
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)
    backoff_s: float = Field(default=0.5, ge=0)
    concurrency: int = Field(default=4, ge=1, le=256)
    chat_format: Literal["chatml", "raw"] = "chatml"
    model_revision: str | None = None
    # llamacpp
    n_ctx: int = Field(default=2048, ge=128)

    def resolved_kind(self) -> str:
        """The concrete backend kind (``auto`` resolved by what is installed)."""
        if self.kind != "auto":
            return self.kind
        return "ctranslate2" if importlib.util.find_spec("ctranslate2") else "transformers"

    def effective_batch_size(self) -> int:
        """``batch_size`` or the backend's default (32 for ctranslate2, 8 otherwise)."""
        if self.batch_size is not None:
            return self.batch_size
        return 32 if self.resolved_kind() == "ctranslate2" else 8

    def build(self) -> LLM:
        """Construct the backend (loads the model for local kinds)."""
        kind = self.resolved_kind()
        if kind == "ctranslate2":
            from recfuse.llm.ctranslate2_backend import CTranslate2LLM

            return CTranslate2LLM(
                self.model,
                compute_type=self.compute_type,
                batch_size=self.effective_batch_size(),
                threads=self.threads,
                inter_threads=self.inter_threads,
                prefix_cache=self.prefix_cache,
                shared_prefixes=self.shared_prefixes,
                prefix_cache_mb=self.prefix_cache_mb,
            )
        if kind == "transformers":
            from recfuse.llm.transformers_backend import TransformersLLM

            return TransformersLLM(
                self.model, batch_size=self.effective_batch_size(), threads=self.threads
            )
        if kind == "llamacpp":
            from recfuse.llm.llamacpp_backend import LlamaCppLLM

            return LlamaCppLLM(self.model, n_ctx=self.n_ctx, threads=self.threads)
        if not self.base_url:
            raise ConfigError("backend.base_url: required when backend.kind is http")
        from recfuse.llm.http_backend import HTTPLLM

        return HTTPLLM(
            self.base_url,
            self.model,
            api_key_env=self.api_key_env,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            backoff_s=self.backoff_s,
            concurrency=self.concurrency,
            chat_format=self.chat_format,
            model_revision=self.model_revision,
        )

    def identity(self) -> tuple[str, str]:
        """``(backend, model_id)`` as the built backend would report them, without loading it.

        Must agree with each backend's ``model_id`` (keys computed here find outputs stored
        by jobs that built the backend).
        """
        kind = self.resolved_kind()
        if kind in ("transformers", "llamacpp", "ctranslate2"):
            from recfuse.frozen import locate_model

            source = locate_model(self.model)
            model_id = f"{source.name}-{source.weights_hash()}"
            if kind == "ctranslate2":
                model_id += f"-ct2-{self.compute_type}"
            return kind, model_id
        if not self.base_url:
            raise ConfigError("backend.base_url: required when backend.kind is http")
        base = self.base_url.rstrip("/")
        base = base if base.endswith("/v1") else base + "/v1"
        model_id = f"{self.model}@{base}" + (
            f"#{self.model_revision}" if self.model_revision else ""
        )
        return "http", model_id
