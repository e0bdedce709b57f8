"""The `LLM` interface every backend meets, and the small value types it speaks in.

A prompt is one of:

* ``str`` — a single user message; chat backends wrap it in the model's chat template;
* a `Chat` (a list of ``{"role": ..., "content": ...}`` messages) — rendered with the chat template;
* a `RawPrompt` — text sent to the model exactly as given (no template).

Every backend answers the same three questions: `LLM.generate` (text continuations),
`LLM.score` (log-probability of each option continuing a prompt) and `LLM.hidden_states`
(per-layer pooled activations, where the backend can see them). Many scores at once go through
`score_many` (the function), which uses a backend's batched ``score_many`` method where it has
one (`ScoreManyMixin` gives every backend a one-by-one default) — so wrappers and backends that
predate it keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import Field

from recfuse.errors import ConfigError, RecfuseError

Message = dict[str, str]
Chat = list[Message]
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class RawPrompt:
    """Text given to the model verbatim: no chat template, no system message."""

    text: str


Prompt = str | Chat | RawPrompt
Pooling = Literal["mean", "last"]


class CapabilityError(ConfigError):
    """The chosen backend cannot do what was asked (e.g. hidden states over HTTP)."""


class BackendError(RecfuseError):
    """A model server kept failing (after retries) or answered something unusable."""


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters; part of every cache key.

    ``temperature == 0`` means greedy decoding; above 0, sampling seeded by ``seed``.
    ``json_schema`` is forwarded to servers that constrain decoding (``response_format``); local
    backends do not constrain, and the job's parser validates instead. The ``Annotated`` bounds
    are enforced where the fields come from a file (the job's ``params:`` section is derived from
    this class, see `recfuse.sections`); ``__post_init__`` checks the lower bounds in code.
    """

    max_tokens: Annotated[int, Field(ge=1, le=8192)] = 64
    temperature: Annotated[float, Field(ge=0.0, le=5.0)] = 0.0
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        object.__setattr__(self, "stop", tuple(self.stop))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stop"] = list(self.stop)
        return out


@dataclass(frozen=True)
class Generation:
    """One generated continuation with its accounting.

    ``finish_reason`` is ``"stop"`` (end of sequence or a stop string) or ``"length"``.
    ``seconds`` is this prompt's share of the wall time of the call that produced it.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class LLM(Protocol):
    """What recfuse asks of any language model.

    Attributes:
        backend: ``"transformers"``, ``"http"``, ``"llamacpp"``, ...
        model_id: identity of the weights for cache keys (a content hash where known).
    """

    backend: str
    model_id: str

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams | None = None
    ) -> list[Generation]:
        """One `Generation` per prompt, in order; ``params`` default to `GenerationParams()`."""
        ...

    def score(self, prompt: Prompt, options: Sequence[str]) -> np.ndarray:
        """Log-probability of each option as the continuation of ``prompt``.

        Returns float64 ``[len(options)]``: the sum of the option's token log-probabilities
        (not length-normalized; divide by token counts yourself if options differ in length).
        For chat prompts the option continues the assistant turn.
        """
        ...

    def hidden_states(
        self, texts: Sequence[str], layers: Sequence[int], pooling: Pooling = "mean"
    ) -> np.ndarray:
        """Pooled hidden states, float32 ``[len(layers), len(texts), hidden_size]``.

        Layer 0 is the embedding output, layer ``i`` the output of block ``i``; negative
        indices count from the last layer. Texts are encoded raw (no chat template).
        """
        ...


def as_chat(prompt: Prompt) -> Chat | None:
    """The prompt as chat messages, or None for a `RawPrompt`; validates roles."""
    if isinstance(prompt, RawPrompt):
        return None
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    chat = [dict(m) for m in prompt]
    for i, message in enumerate(chat):
        if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ConfigError(
                f"prompt message {i}: needs role in {ROLES} and a string content, got {message!r}"
            )
    return chat


def prompt_identity(prompt: Prompt) -> dict[str, Any]:
    """A JSON-able description of a prompt, used in cache keys and stored with each output."""
    if isinstance(prompt, RawPrompt):
        return {"raw": prompt.text}
    return {"chat": as_chat(prompt)}


def prompt_from_identity(identity: dict[str, Any]) -> Prompt:
    """Inverse of `prompt_identity` (for workers that receive prompts as JSON)."""
    if "raw" in identity:
        return RawPrompt(identity["raw"])
    return list(identity["chat"])


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string; return (text, whether a stop string was hit)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


ScoreItem = tuple[Prompt, Sequence[str]]


class ScoreManyMixin:
    """Default ``score_many`` for backends: one `LLM.score` call per item.

    Backends that can batch (``ctranslate2``) override it; results must equal one-by-one
    scoring up to float rounding.
    """

    def score_many(self, items: Sequence[ScoreItem]) -> list[np.ndarray]:
        """``[llm.score(prompt, options) for prompt, options in items]``, float64 arrays."""
        return [
            np.asarray(self.score(prompt, list(options)), dtype=np.float64)  # type: ignore[attr-defined]
            for prompt, options in items
        ]


def score_many(llm: Any, items: Sequence[ScoreItem]) -> list[np.ndarray]:
    """Score many ``(prompt, options)`` pairs: one float64 ``[len(options)]`` array per item.

    Uses ``llm.score_many`` (one batched pass on backends that have it), else `LLM.score` per
    item, so any object meeting `LLM` (wrappers such as `GovernedLLM` included) can be passed.
    """
    items = [(prompt, list(options)) for prompt, options in items]
    method = getattr(llm, "score_many", None)
    if callable(method):
        out = [np.asarray(r, dtype=np.float64) for r in method(items)]
    else:
        out = [
            np.asarray(llm.score(prompt, options), dtype=np.float64) for prompt, options in items
        ]
    if len(out) != len(items) or any(
        r.shape != (len(o),) for r, (_, o) in zip(out, items, strict=True)
    ):
        raise BackendError(f"score_many: backend {llm.backend!r} returned misshapen scores")
    return out


TextCallback = Callable[[int, str], bool]
"""``on_text(row, delta) -> keep_going``: called as text of prompt ``row`` arrives; False stops it."""


def generate_streaming(
    llm: LLM, prompts: Sequence[Prompt], params: GenerationParams, on_text: TextCallback
) -> list[Generation]:
    """`LLM.generate` that reports text as it arrives and can stop a prompt early.

    A backend that can stream offers ``generate_stream(prompts, params, on_text)``: it calls
    ``on_text`` with each new piece of text (never a stop string or half a character; the pieces
    join to the final text) and stops that prompt's decoding when ``on_text`` returns False. Every
    other backend gets this default: ``generate`` runs to completion and each prompt's whole text
    arrives in one piece.
    """
    stream = getattr(llm, "generate_stream", None)
    if callable(stream):
        return list(stream(prompts, params, on_text))
    gens = llm.generate(prompts, params)
    for row, gen in enumerate(gens):
        if gen.text:
            on_text(row, gen.text)
    return gens


def held_back(text: str, stop: Sequence[str]) -> str:
    """``text`` minus what may still change: a trailing partial character (U+FFFD while its bytes
    are incomplete) or a suffix that could grow into a stop string."""
    text = text.rstrip("\ufffd")
    cut = 0
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                cut = max(cut, k)
                break
    return text[: len(text) - cut]


class TextStream:
    """One prompt's growing text turned into `TextCallback` pieces that never need taking back.

    ``update(text)`` takes the whole text decoded so far and returns (keep going, stop string
    hit); ``flush(final)`` sends whatever of the final text is still unsent.
    """

    def __init__(self, row: int, stop: Sequence[str], on_text: TextCallback | None) -> None:
        self.row, self.stop, self.on_text = row, tuple(stop), on_text
        self.sent = ""

    def _send(self, text: str) -> bool:
        if self.on_text is None or not text.startswith(self.sent) or text == self.sent:
            return True
        delta, self.sent = text[len(self.sent) :], text
        return bool(self.on_text(self.row, delta))

    def update(self, text: str) -> tuple[bool, bool]:
        cut, hit = truncate_at_stop(text, self.stop)
        going = self._send(cut if hit else held_back(text, self.stop))
        return going and not hit, hit

    def flush(self, final: str) -> None:
        self._send(final)
