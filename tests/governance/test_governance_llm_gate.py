"""`GovernedLLM`: LLM calls gated and logged, prompts and answers provable (control flow only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from recfuse.governance.digest import canonical_json, digest, jsonable
from recfuse.governance.governor import Governor, PolicyDenied
from recfuse.governance.ledger import Ledger
from recfuse.governance.llm_gate import LLM_POLICY_DIR, GovernedLLM
from recfuse.governance.policy import Policies
from recfuse.governance.verify import verify_ledger
from recfuse.llm.base import GenerationParams


@dataclass(frozen=True)
class FakeGeneration:
    text: str
    completion_tokens: int


class FakeLLM:
    """Echoes prompts; counts calls so a test can see whether the model ran."""

    backend = "fake"
    model_id = "fake-echo"

    def __init__(self) -> None:
        self.calls = 0

    def generate(
        self, prompts: Sequence[str], params: GenerationParams | None = None
    ) -> list[FakeGeneration]:
        self.calls += 1
        n = (params or GenerationParams()).max_tokens
        return [FakeGeneration(p[::-1][:n], min(len(p), n)) for p in prompts]

    def score(self, prompt: str, options: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return -np.arange(len(options), dtype=np.float64)

    def hidden_states(
        self, texts: Sequence[str], layers: Sequence[int], pooling: str = "mean"
    ) -> np.ndarray:
        self.calls += 1
        return np.zeros((len(layers), len(texts), 4), dtype=np.float32)


def test_llm_calls_are_gated_and_provable(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        gov = Governor(
            ledger, Policies.from_dir(LLM_POLICY_DIR), actor="explainer", keep_content=True
        )
        fake = FakeLLM()
        llm = GovernedLLM(fake, gov)
        out = llm.generate(["why item 42?"], GenerationParams(max_tokens=8))
        entry = ledger.entry(gov.last_entry or 0)
        assert entry["decision"] == "allow" and entry["resource"] == {
            "id": "fake-echo",
            "type": "Model",
        }
        asked = ledger.blob(entry["inputs"])
        assert asked is not None and b"why item 42?" in asked
        assert ledger.blob(entry["outputs"]) == canonical_json(jsonable(out))
        assert entry["outputs"] == digest(out)
        assert llm.score("q", [" yes", " no"]).shape == (2,)
        assert llm.hidden_states(["a"], [1, 2]).shape == (2, 1, 4)
        calls = fake.calls
        for bad in (
            lambda: llm.generate(["x"], GenerationParams(max_tokens=4096)),  # too many tokens
            lambda: llm.generate(["x"], GenerationParams(temperature=2.0)),  # 20000 > 15000 scaled
            lambda: llm.generate(["x" * 20_000]),  # a prompt that long is refused
            lambda: llm.score("q", [str(i) for i in range(100)]),
        ):
            with pytest.raises(PolicyDenied):
                bad()
        assert fake.calls == calls  # the model never ran for a refused call
        assert [e["decision"] for e in ledger.entries(1)] == ["allow"] * 3 + ["deny"] * 4
    assert verify_ledger(tmp_path / "l.db").ok
