"""Shared fixtures for the LLM runtime tests: one SmolLM2 per session, one server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from recfuse.llm.base import Generation, GenerationParams, Pooling, Prompt

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def llm_cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RECFUSE_CACHE for this session; the dense SmolLM2 copy is made once in it.

    The session cache of tests/conftest.py is shared when it is set (so other parts' tests and
    these dequantize SmolLM2 once per run); RECFUSE_TEST_CACHE names a folder to reuse across
    sessions while developing. Cache databases of the tests themselves always go to tmp_path.
    """
    chosen = os.environ.get("RECFUSE_TEST_CACHE") or os.environ.get("RECFUSE_CACHE")
    root = Path(chosen) if chosen else tmp_path_factory.mktemp("recfuse_cache")
    os.environ["RECFUSE_CACHE"] = str(root)
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    """A `recfuse llm serve` subprocess on 127.0.0.1, started once the dense model copy exists."""

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self.extra = list(extra)  # more `recfuse llm serve` options
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.log: Path | None = None

    def start(self, log_dir: Path) -> None:
        if self.process is not None:
            return
        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.log = log_dir / "server.log"
        cmd = [
            sys.executable,
            "-c",
            "from recfuse.cli import main; main()",
            "llm",
            "serve",
            "--model",
            "smollm2",
            "--port",
            str(port),
            "--threads",
            "1",
            *self.extra,
        ]
        self.process = subprocess.Popen(
            cmd, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=dict(os.environ)
        )

    def wait_ready(self, timeout_s: float = 240.0) -> str:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text() if self.log else ''}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return self.base_url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


_SERVER = _Server()


@pytest.fixture(scope="session")
def smollm2(llm_cache_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real SmolLM2 through the transformers backend, loaded once."""
    import torch

    from recfuse.llm.transformers_backend import TransformersLLM

    torch.set_num_threads(1)
    llm = TransformersLLM("smollm2", batch_size=4)
    # The dense copy now exists: start the server so it loads while other tests run.
    _SERVER.start(tmp_path_factory.mktemp("server"))
    yield llm
    _SERVER.stop()


@pytest.fixture(scope="session")
def ct2_float32(llm_cache_root: Path) -> Any:
    """SmolLM2 through CTranslate2 in float32 (converted once into the session cache)."""
    pytest.importorskip("ctranslate2")
    from recfuse.llm.ctranslate2_backend import CTranslate2LLM

    return CTranslate2LLM("smollm2", compute_type="float32", batch_size=8, threads=1)


@pytest.fixture(scope="session")
def ct2_int8(ct2_float32: Any) -> Any:
    """SmolLM2 through CTranslate2, int8 (the default), from the same conversion."""
    from recfuse.llm.ctranslate2_backend import CTranslate2LLM

    return CTranslate2LLM("smollm2", compute_type="int8", batch_size=8, threads=1)


@pytest.fixture(scope="session")
def server_url(smollm2: Any) -> Iterator[str]:
    """Base URL of a ready `recfuse llm serve` process serving SmolLM2."""
    yield _SERVER.wait_ready()


@pytest.fixture(scope="session")
def start_server(
    smollm2: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., _Server]]:
    """Start a ready `recfuse llm serve` of one's own with more options (stop it when done;
    whatever is still running at the end of the session is stopped here)."""
    started: list[_Server] = []

    def start(*extra: str) -> _Server:
        server = _Server(extra)
        server.start(tmp_path_factory.mktemp("server"))
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def collect() -> Callable[[list[str]], Callable[[int, str], bool]]:
    """``collect(pieces)``: an ``on_text`` callback that keeps every piece, never stopping."""

    def make(into: list[str]) -> Callable[[int, str], bool]:
        def on_text(row: int, piece: str) -> bool:
            into.append(piece)
            return True

        return on_text

    return make


class FakeScriptedLLM:
    """Control-flow double for unit tests only: answers from a script, counts calls."""

    backend = "fake"
    model_id = "fake-scripted"
    batch_size = 2

    def __init__(self, answers: dict[str, list[str]] | None = None, default: str = "ok"):
        self.answers = {k: list(v) for k, v in (answers or {}).items()}
        self.default = default
        self.prompts_seen: list[str] = []

    def _text(self, prompt: Prompt) -> str:
        if isinstance(prompt, list):
            return prompt[-1]["content"]
        return prompt if isinstance(prompt, str) else prompt.text

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams | None = None
    ) -> list[Generation]:
        out = []
        for prompt in prompts:
            text = self._text(prompt)
            self.prompts_seen.append(text)
            script = next((v for k, v in self.answers.items() if k in text), None)
            answer = script.pop(0) if script else self.default
            out.append(Generation(answer, 5, 3, "stop", 0.001))
        return out

    def score(self, prompt: Prompt, options: Sequence[str]) -> np.ndarray:
        raise AssertionError("not scripted")

    def hidden_states(
        self, texts: Sequence[str], layers: Sequence[int], pooling: Pooling = "mean"
    ) -> np.ndarray:
        raise AssertionError("not scripted")


@pytest.fixture
def fake_llm() -> type[FakeScriptedLLM]:
    """The `FakeScriptedLLM` class (control-flow tests only; never behind a number)."""
    return FakeScriptedLLM
