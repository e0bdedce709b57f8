"""`LlamaCppLLM`: GGUF models through llama-cpp-python — an optional extra, imported lazily.

On two cores it generated about 41 tokens/s for SmolLM2 Q4 against about 15 for transformers
(measured while setting up this environment). PyPI ships llama-cpp-python as source only; the
native build crashed with "Illegal instruction" on these machines, so it must be built with
explicit CPU flags (see `INSTALL_HINT`). recfuse never compiles it for you.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from recfuse.errors import ConfigError
from recfuse.llm.base import (
    CapabilityError,
    Generation,
    GenerationParams,
    Pooling,
    Prompt,
    RawPrompt,
    as_chat,
    truncate_at_stop,
)

INSTALL_HINT = (
    "backend llamacpp needs the optional package llama-cpp-python, which PyPI ships as source "
    "only (about 7 minutes to compile). Build it with portable CPU flags, e.g. "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
    ".venv/bin/pip install llama-cpp-python  (a native build died with 'Illegal instruction' "
    "here), or use backend kind 'transformers' (same GGUF weights) or 'http'"
)


def import_llama_cpp() -> Any:
    """Import ``llama_cpp`` or raise `ConfigError` with `INSTALL_HINT`."""
    try:
        import llama_cpp
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return llama_cpp


class LlamaCppLLM:
    """A GGUF model run by llama.cpp behind the `LLM` interface (no hidden states).

    Args:
        model: ``"smollm2"`` or a path to a ``.gguf`` file.
        n_ctx: context length in tokens.
        threads: llama.cpp threads (default: all cores).
    """

    backend = "llamacpp"

    def __init__(self, model: str = "smollm2", n_ctx: int = 2048, threads: int | None = None):
        from recfuse.frozen import locate_model

        llama_cpp = import_llama_cpp()
        source = locate_model(model)
        if not source.gguf_file:
            raise ConfigError(f"backend llamacpp: model {model!r} is not a .gguf file")
        self.model_name = source.name
        self.model_id = f"{source.name}-{source.weights_hash()}"
        # logits_all keeps every position's logits, which `score` reads.
        self.llm = llama_cpp.Llama(
            model_path=str(source.folder / source.gguf_file),
            n_ctx=n_ctx,
            n_threads=threads or os.cpu_count() or 1,
            logits_all=True,
            verbose=False,
        )
        template = (self.llm.metadata or {}).get("tokenizer.chat_template")
        self._template = None
        if template:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            self._template = ImmutableSandboxedEnvironment().from_string(template)

    def render(self, prompt: Prompt) -> str:
        chat = as_chat(prompt)
        if chat is None:
            assert isinstance(prompt, RawPrompt)
            return prompt.text
        if self._template is None:
            raise ConfigError(f"model {self.model_name!r} has no chat template; use RawPrompt")
        return str(self._template.render(messages=chat, add_generation_prompt=True))

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams | None = None
    ) -> list[Generation]:
        """Sequential generation (llama.cpp decodes one sequence at a time here)."""
        params = params or GenerationParams()
        out = []
        for prompt in prompts:
            started = time.perf_counter()
            self.llm.set_seed(params.seed)
            body = self.llm.create_completion(
                self.render(prompt),
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                stop=list(params.stop) or None,
            )
            choice = body["choices"][0]
            text, _ = truncate_at_stop(choice.get("text", ""), params.stop)
            usage = body.get("usage") or {}
            out.append(
                Generation(
                    text,
                    int(usage.get("prompt_tokens", 0)),
                    int(usage.get("completion_tokens", 0)),
                    str(choice.get("finish_reason") or "stop"),
                    time.perf_counter() - started,
                )
            )
        return out

    def score(self, prompt: Prompt, options: Sequence[str]) -> np.ndarray:
        """Sum of option-token log-probabilities after the rendered prompt, ``[len(options)]``."""
        prefix = self.llm.tokenize(self.render(prompt).encode(), add_bos=False, special=True)
        scores = np.zeros(len(options), dtype=np.float64)
        for i, option in enumerate(options):
            opt = self.llm.tokenize(option.encode(), add_bos=False, special=False)
            self.llm.reset()
            self.llm.eval(prefix + opt)
            logits = np.asarray(
                self.llm.scores[len(prefix) - 1 : len(prefix) + len(opt) - 1], dtype=np.float64
            )
            logits -= logits.max(axis=1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            scores[i] = float(logp[np.arange(len(opt)), opt].sum())
        return scores

    def hidden_states(
        self, texts: Sequence[str], layers: Sequence[int], pooling: Pooling = "mean"
    ) -> np.ndarray:
        """Not available: llama-cpp-python exposes pooled embeddings only, not per-layer states."""
        raise CapabilityError(
            "backend llamacpp: per-layer hidden states are not exposed; use the transformers "
            "backend on the same GGUF file"
        )
