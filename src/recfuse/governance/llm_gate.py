"""`GovernedLLM`: any recfuse `LLM` behind the policy gate, every call in the ledger.

It has the same ``generate`` / ``score`` / ``hidden_states`` methods as the model it wraps, so a
job, an explainer or a server can take it wherever it takes an `LLM`. Each call is one governed
action on ``Model::"<model_id>"``: the context gives Cedar the call's size (prompt count, longest
prompt, max tokens, temperature as a scaled integer), and with ``keep_content=True`` on the
`Governor` the prompts and answers themselves are kept beside the log, so one can later prove
what the model was asked and what it answered. Default policies: ``policies/llm/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recfuse.governance.governor import Governor
from recfuse.governance.policy import Resource
from recfuse.llm.base import GenerationParams

LLM_POLICY_DIR = Path(__file__).parent / "policies" / "llm"


def _prompt_chars(prompt: Any) -> int:
    if isinstance(prompt, str):
        return len(prompt)
    if hasattr(prompt, "text"):  # RawPrompt
        return len(prompt.text)
    return sum(len(str(m.get("content", ""))) for m in prompt)  # chat messages


class GovernedLLM:
    """Wrap ``llm`` (anything meeting `recfuse.llm.LLM`) so each call passes ``governor``."""

    def __init__(self, llm: Any, governor: Governor) -> None:
        self.llm = llm
        self.governor = governor
        self.backend = llm.backend
        self.model_id = llm.model_id

    def _resource(self) -> Resource:
        return Resource("Model", self.model_id, {"backend": self.backend})

    def generate(self, prompts: Sequence[Any], params: GenerationParams | None = None) -> list[Any]:
        """`LLM.generate`, gated; raises `PolicyDenied` (logged, model not called) if refused."""
        prompts = list(prompts)
        params = params or GenerationParams()
        context = {
            "n_prompts": len(prompts),
            "max_tokens": int(params.max_tokens),
            "temperature": float(params.temperature),
            "max_prompt_chars": max((_prompt_chars(p) for p in prompts), default=0),
        }
        return self.governor.run(
            "generate", self._resource(), self.llm.generate, prompts, params, context=context,
            inputs={"prompts": prompts, **params.as_dict()},
        )  # fmt: skip

    def score(self, prompt: Any, options: Sequence[str]) -> Any:
        """`LLM.score`, gated."""
        context = {"n_options": len(options), "max_prompt_chars": _prompt_chars(prompt)}
        return self.governor.run(
            "score", self._resource(), self.llm.score, prompt, list(options), context=context,
            inputs={"prompt": prompt, "options": list(options)},
        )  # fmt: skip

    def hidden_states(
        self, texts: Sequence[str], layers: Sequence[int], pooling: str = "mean"
    ) -> Any:
        """`LLM.hidden_states`, gated (the input digest covers every text)."""
        context = {"n_texts": len(texts), "n_layers": len(layers)}
        return self.governor.run(
            "hidden_states", self._resource(), self.llm.hidden_states, list(texts), list(layers),
            pooling, context=context, inputs={"texts": list(texts), "layers": list(layers), "pooling": pooling},
        )  # fmt: skip
