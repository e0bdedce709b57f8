"""LLM runtime: one interface over local and served models, one content-addressed cache,
resumable jobs, fenced prompts, parsed outputs and a leakage guard. See docs/llm.md.

Quick use from other parts of recfuse::

    from recfuse.llm import load_llm
    llm = load_llm()                                    # SmolLM2 via transformers
    llm.generate(["Describe: ..."], max_tokens=32)      # -> [Generation(text=...)]
    llm.score("Is the sky blue?", [" yes", " no"])      # -> log-probs, shape [2]
    llm.hidden_states(["a title"], layers=[6, 12])      # -> [2, 1, 576]
"""

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


def load_llm(kind: str = "transformers", model: str = "smollm2", **options: object) -> LLM:
    """Build a backend from keyword options (the same keys as a job's ``backend:`` block)."""
    return BackendSpec(kind=kind, model=model, **options).build()  # type: ignore[arg-type]


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
    "TextParser",
    "cache_key",
    "check_pairs_in_train",
    "default_cache_path",
    "fence",
    "history_for_prompt",
    "load_llm",
    "neutralize",
]
