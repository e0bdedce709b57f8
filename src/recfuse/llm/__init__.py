"""LLM runtime: one interface over local and served models, one content-addressed cache,
resumable jobs, fenced prompts, parsed outputs and a leakage guard. See docs/llm.md.

Quick use from other parts of recfuse::

    from recfuse.llm import fast_llm, score_many
    llm = fast_llm()                                    # SmolLM2, CTranslate2 int8 (shared)
    llm.generate(["Describe: ..."], GenerationParams(max_tokens=32))  # -> [Generation(...)]
    llm.score("Is the sky blue?", [" yes", " no"])      # -> log-probs, shape [2]
    score_many(llm, [(prompt, ["A", "B"]), ...])        # -> one batched pass, [2] per item
    llm.hidden_states(["a title"], layers=[6, 12])      # -> [2, 1, 576] (transformers inside)
"""

from functools import lru_cache

from recfuse.llm.backend_spec import BackendSpec
from recfuse.llm.base import (
    LLM,
    BackendError,
    CapabilityError,
    Chat,
    Generation,
    GenerationParams,
    Prompt,
    RawPrompt,
    ScoreManyMixin,
    score_many,
)
from recfuse.llm.cache import LLMCache, cache_key, default_cache_path
from recfuse.llm.job import JobReport, LLMJob
from recfuse.llm.leakage import check_pairs_in_train, history_for_prompt
from recfuse.llm.parsing import ChoiceParser, JsonParser, ParseFailure, ParseSpec, TextParser
from recfuse.llm.prompts import (
    DATA_RULE,
    FENCE_CLOSE,
    FENCE_OPEN,
    PromptTemplate,
    fence,
    neutralize,
)
from recfuse.llm.sources import PromptRecord


def load_llm(kind: str = "auto", model: str = "smollm2", **options: object) -> LLM:
    """Build a new backend from keyword options (the same keys as a job's ``backend:`` block).

    ``kind="auto"`` is CTranslate2 (int8) where installed, else transformers.
    """
    return BackendSpec(kind=kind, model=model, **options).build()  # type: ignore[arg-type]


@lru_cache(maxsize=4)
def fast_llm(model: str = "smollm2", compute_type: str = "int8", threads: int | None = None) -> LLM:
    """The default fast backend for ``model``, built once per process and shared.

    CTranslate2 where installed (``compute_type`` int8 or float32), else transformers. Use it
    for generation and (batched) scoring; its ``hidden_states`` delegates to transformers.
    """
    return load_llm("auto", model, compute_type=compute_type, threads=threads)


__all__ = [
    "DATA_RULE",
    "FENCE_CLOSE",
    "FENCE_OPEN",
    "LLM",
    "BackendError",
    "BackendSpec",
    "CapabilityError",
    "Chat",
    "ChoiceParser",
    "Generation",
    "GenerationParams",
    "JobReport",
    "JsonParser",
    "LLMCache",
    "LLMJob",
    "ParseFailure",
    "ParseSpec",
    "Prompt",
    "PromptRecord",
    "PromptTemplate",
    "RawPrompt",
    "ScoreManyMixin",
    "TextParser",
    "cache_key",
    "check_pairs_in_train",
    "default_cache_path",
    "fence",
    "history_for_prompt",
    "fast_llm",
    "load_llm",
    "neutralize",
    "score_many",
]
