"""`HTTPLLM`: any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, hosted APIs,
`recfuse llm serve`).

Chat prompts go to ``/v1/chat/completions``, `RawPrompt` text to ``/v1/completions``. `score`
uses the completions endpoint with ``echo`` and ``logprobs`` (as vLLM and the legacy OpenAI API
offer): the option's tokens are those whose character offset lies past the rendered prompt. The
client renders chat prompts for scoring itself (ChatML by default), since the chat endpoint
cannot score a given continuation.

Transient failures (connection errors, timeouts, HTTP 429 and 5xx) are retried with exponential
backoff; at most ``concurrency`` requests are in flight.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import httpx
import numpy as np

from recfuse.errors import ConfigError
from recfuse.llm.base import (
    BackendError,
    CapabilityError,
    Chat,
    Generation,
    GenerationParams,
    Pooling,
    Prompt,
    RawPrompt,
    TextCallback,
    TextStream,
    as_chat,
    truncate_at_stop,
)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 30.0  # the longest wait a Retry-After header can ask for


def render_chatml(chat: Chat) -> str:
    """ChatML (SmolLM2, Qwen, many others): ``<|im_start|>role\\ncontent<|im_end|>\\n`` turns and
    an open assistant turn."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in chat)
    return turns + "<|im_start|>assistant\n"


class HTTPLLM:
    """An OpenAI-compatible server behind the `LLM` interface.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (the ``/v1`` is added when missing).
        model: the server's model name.
        api_key_env: name of the environment variable holding the API key (never the key).
        timeout_s: per-request timeout.
        max_retries: retries of a transient failure; the wait doubles from ``backoff_s``.
        concurrency: requests in flight at once.
        chat_format: how `score` renders chat prompts: ``chatml`` or ``raw`` (message contents
            joined by blank lines; for base models).
        model_revision: optional weights identity for cache keys (a server cannot prove it).
    """

    backend = "http"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        concurrency: int = 4,
        chat_format: Literal["chatml", "raw"] = "chatml",
        model_revision: str | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"backend.base_url: {base_url!r} is not an http(s) URL")
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model = model
        self.model_id = f"{model}@{self.base_url}" + (
            f"#{model_revision}" if model_revision else ""
        )
        headers = {}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ConfigError(
                    f"backend.api_key_env: environment variable {api_key_env} is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = float(backoff_s)
        self.concurrency = max(1, int(concurrency))
        self.chat_format = chat_format
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(max_connections=self.concurrency),
        )
        self.retries_used = 0  # accounting: how often a transient failure was retried

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ transport

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on transient failures; raises `BackendError` when they run out."""
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries_used += 1
            try:
                response = self.client.post(path, json=payload)
            except httpx.TransportError as exc:  # connect errors and timeouts
                last = f"{type(exc).__name__}: {exc}"
                wait = self.backoff_s * 2**attempt
            else:
                if response.status_code < 400:
                    try:
                        return dict(response.json())
                    except ValueError:
                        raise BackendError(f"{self.base_url}{path}: answer is not JSON") from None
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRY_STATUS:
                    raise BackendError(f"{self.base_url}{path}: {last}")
                wait = self.backoff_s * 2**attempt
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    # honoured up to a cap: a server saying "Retry-After: 86400" must not hang a job
                    wait = max(wait, min(float(retry_after), MAX_RETRY_AFTER_S))
            if attempt < self.max_retries:
                time.sleep(wait)
        raise BackendError(
            f"{self.base_url}{path}: failed after {self.max_retries + 1} tries ({last})"
        )

    def _post_stream(
        self, path: str, payload: dict[str, Any], stream: TextStream
    ) -> tuple[str, str, dict[str, Any]]:
        """POST with ``stream: true``; feeds ``stream`` and returns (text, finish, usage)."""
        body = {**payload, "stream": True, "stream_options": {"include_usage": True}}
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries_used += 1
            state: dict[str, Any] = {"text": "", "finish": "length", "usage": {}, "chunks": 0}
            try:
                with self.client.stream("POST", path, json=body) as response:
                    if response.status_code >= 400:
                        response.read()
                        last = f"HTTP {response.status_code}: {response.text[:200]}"
                        if response.status_code not in RETRY_STATUS:
                            raise BackendError(f"{self.base_url}{path}: {last}")
                    else:
                        self._read_events(path, response, stream, state)
                        return state["text"], state["finish"], state["usage"]
            except httpx.TransportError as exc:
                if state["chunks"]:
                    raise BackendError(f"{self.base_url}{path}: stream broke: {exc}") from None
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_retries:
                time.sleep(self.backoff_s * 2**attempt)
        raise BackendError(
            f"{self.base_url}{path}: failed after {self.max_retries + 1} tries ({last})"
        )

    def _read_events(
        self, path: str, response: httpx.Response, stream: TextStream, state: dict[str, Any]
    ) -> None:
        """Consume ``data:`` events until ``[DONE]``, a stop string or ``on_text`` says stop."""
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                raise BackendError(
                    f"{self.base_url}{path}: event is not JSON: {data[:80]}"
                ) from None
            if "error" in chunk:
                raise BackendError(f"{self.base_url}{path}: {chunk['error']}")
            state["chunks"] += 1
            state["usage"] = chunk.get("usage") or state["usage"]
            for choice in chunk.get("choices") or []:
                piece = choice.get("text") or (choice.get("delta") or {}).get("content") or ""
                state["text"] += piece
                state["finish"] = choice.get("finish_reason") or state["finish"]
            going, _ = stream.update(state["text"])
            if not going:
                return  # leaving the `with` closes the connection: the server stops decoding

    def get_models(self) -> list[str]:
        """Model names the server lists at ``/v1/models``."""
        try:
            response = self.client.get("/models")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.base_url}/models: {exc}") from None
        return [m["id"] for m in response.json().get("data", [])]

    # ------------------------------------------------------------------ LLM interface

    def _payload(self, prompt: Prompt, params: GenerationParams) -> tuple[str, dict[str, Any]]:
        """The endpoint and body for one prompt: chats to ``/chat/completions``, raw text to
        ``/completions``."""
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "seed": params.seed,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        chat = as_chat(prompt)
        if chat is None:
            assert isinstance(prompt, RawPrompt)
            return "/completions", {**payload, "prompt": prompt.text}
        if params.json_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": params.json_schema},
            }
        return "/chat/completions", {**payload, "messages": chat}

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams | None = None
    ) -> list[Generation]:
        """One request per prompt, ``concurrency`` at a time; results in prompt order."""
        params = params or GenerationParams()

        def one(prompt: Prompt) -> Generation:
            path, payload = self._payload(prompt, params)
            started = time.perf_counter()
            body = self._post(path, payload)
            choice = body["choices"][0]
            text = (
                choice.get("text", "")
                if "prompt" in payload
                else ((choice.get("message") or {}).get("content") or "")
            )
            text, _ = truncate_at_stop(text, params.stop)
            usage = body.get("usage") or {}
            return Generation(
                text,
                int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", 0)),
                str(choice.get("finish_reason") or "stop"),
                time.perf_counter() - started,
            )

        return self._each(one, prompts)

    def _each(
        self, one: Callable[[Prompt], Generation], prompts: Sequence[Prompt]
    ) -> list[Generation]:
        if len(prompts) <= 1 or self.concurrency == 1:
            return [one(p) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(one, prompts))

    def generate_stream(
        self,
        prompts: Sequence[Prompt],
        params: GenerationParams | None = None,
        on_text: TextCallback | None = None,
    ) -> list[Generation]:
        """`generate` over server-sent events: ``on_text(prompt index, piece)`` as text arrives.

        ``on_text`` returning False closes that stream (the server sees the disconnect). A
        connection failure before the first chunk is retried like any request; one after it
        raises `BackendError` (a retry would repeat text already handed out).
        """
        params = params or GenerationParams()
        index = {id(p): i for i, p in enumerate(prompts)}

        def one(prompt: Prompt) -> Generation:
            path, payload = self._payload(prompt, params)
            stream = TextStream(index[id(prompt)], params.stop, on_text)
            started = time.perf_counter()
            text, finish, usage = self._post_stream(path, payload, stream)
            text, hit = truncate_at_stop(text, params.stop)
            stream.flush(text)
            return Generation(
                text,
                int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", 0)),
                "stop" if hit else finish,
                time.perf_counter() - started,
            )

        return self._each(one, prompts)

    def render(self, prompt: Prompt) -> str:
        """The text `score` sends for ``prompt`` (see ``chat_format``)."""
        chat = as_chat(prompt)
        if chat is None:
            assert isinstance(prompt, RawPrompt)
            return prompt.text
        if self.chat_format == "raw":
            return "\n\n".join(m["content"] for m in chat)
        return render_chatml(chat)

    def score(self, prompt: Prompt, options: Sequence[str]) -> np.ndarray:
        """Log-probability of each option after the rendered prompt, ``[len(options)]``,
        from the server's echoed prompt log-probabilities."""
        prefix = self.render(prompt)

        def one(option: str) -> float:
            full = prefix + option
            body = self._post(
                "/completions",
                {
                    "model": self.model,
                    "prompt": full,
                    "max_tokens": 1,
                    "temperature": 0.0,
                    "echo": True,
                    "logprobs": 1,
                },
            )
            logprobs = body["choices"][0].get("logprobs") or {}
            offsets = logprobs.get("text_offset")
            values = logprobs.get("token_logprobs")
            if not offsets or values is None:
                raise CapabilityError(
                    f"{self.base_url}: the server does not return echoed prompt log-probabilities "
                    "(completions with echo=true, logprobs); score needs them"
                )
            picked = [
                v for o, v in zip(offsets, values, strict=False) if len(prefix) <= o < len(full)
            ]
            if not picked or any(v is None for v in picked):
                raise BackendError(f"{self.base_url}: no log-probabilities for option {option!r}")
            return float(sum(picked))

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(options)))) as pool:
            return np.array(list(pool.map(one, options)), dtype=np.float64)

    def hidden_states(
        self, texts: Sequence[str], layers: Sequence[int], pooling: Pooling = "mean"
    ) -> np.ndarray:
        """Not available over HTTP: OpenAI-compatible servers do not expose activations."""
        raise CapabilityError(
            "backend http: hidden states are not exposed by OpenAI-compatible servers; "
            "use the transformers backend on the same model"
        )
