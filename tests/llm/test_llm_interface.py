"""Every backend's ``generate`` takes the one value type for decoding options."""

from __future__ import annotations

import inspect

import pytest

from recfuse.features.captions import DeviceCaptioner
from recfuse.governance.llm_gate import GovernedLLM
from recfuse.llm.base import LLM
from recfuse.llm.ctranslate2_backend import CTranslate2LLM
from recfuse.llm.http_backend import HTTPLLM
from recfuse.llm.llamacpp_backend import LlamaCppLLM
from recfuse.llm.transformers_backend import TransformersLLM

BACKENDS = [
    LLM,
    TransformersLLM,
    CTranslate2LLM,
    HTTPLLM,
    LlamaCppLLM,
    GovernedLLM,
    DeviceCaptioner,
]


@pytest.mark.parametrize("cls", BACKENDS, ids=lambda c: c.__name__)
def test_generate_takes_prompts_and_params(cls: type) -> None:
    signature = inspect.signature(cls.generate)
    assert list(signature.parameters) == ["self", "prompts", "params"]
    assert signature.parameters["params"].default is None


@pytest.mark.parametrize("cls", [TransformersLLM, HTTPLLM], ids=lambda c: c.__name__)
def test_generate_stream_takes_params_then_callback(cls: type) -> None:
    assert list(inspect.signature(cls.generate_stream).parameters) == [
        "self", "prompts", "params", "on_text",
    ]  # fmt: skip
