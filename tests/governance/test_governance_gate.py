"""The policy gate: default deny, denials logged and not executed, policy changes visible."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recfuse.errors import ConfigError
from recfuse.governance.digest import canonical_json, jsonable
from recfuse.governance.governor import Governor, PolicyDenied, governed
from recfuse.governance.ledger import Ledger
from recfuse.governance.policy import Policies, Resource, scaled
from recfuse.governance.verify import verify_ledger

LLM_POLICY = """
@id("ask")
permit (principal == Agent::"explainer", action == Action::"generate", resource)
when { context.prompt_tokens <= 512 && context.temperature <= 7000 };
"""


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.db") as led:
        yield led


def test_default_deny_and_denial_is_logged_without_running(ledger: Ledger) -> None:
    gov = Governor(ledger, Policies({"llm.cedar": LLM_POLICY}), actor="explainer")
    calls: list[str] = []

    def generate(prompt: str) -> str:
        calls.append(prompt)
        return prompt.upper()

    ok = gov.run("generate", Resource("Model", "smollm2"), generate, "hi",
                 context={"prompt_tokens": 3, "temperature": 0.2})  # fmt: skip
    assert ok == "HI" and calls == ["hi"]
    for action, ctx, actor in [
        ("delete_cache", {"prompt_tokens": 3, "temperature": 0.2}, None),  # no permit at all
        ("generate", {"prompt_tokens": 900, "temperature": 0.2}, None),  # condition fails
        ("generate", {"prompt_tokens": 3, "temperature": 0.9}, None),  # scaled float too high
        ("generate", {"prompt_tokens": 3, "temperature": 0.2}, "mallory"),  # other principal
    ]:
        with pytest.raises(PolicyDenied) as denied:
            gov.run(
                action, Resource("Model", "smollm2"), generate, "nope", context=ctx, actor=actor
            )
        entry = ledger.entry(denied.value.entry)
        assert entry["decision"] == "deny" and entry["outcome"] == "denied"
        assert entry["action"] == action and entry["outputs"] is None
    assert calls == ["hi"]  # none of the denied calls ran
    assert [e["decision"] for e in ledger.entries(1)] == ["allow"] + ["deny"] * 4
    assert verify_ledger(ledger.path).ok


def test_policy_errors_fail_closed(ledger: Ledger) -> None:
    """A forbid that cannot be evaluated (missing context) must not let a permit through."""
    text = '@id("p") permit (principal, action, resource);\n' + (
        '@id("f") forbid (principal, action, resource) when { context.risk > 10 };'
    )
    gov = Governor(ledger, Policies({"p.cedar": text}))
    assert gov.authorize("act", Resource("X", "1"), {"risk": 1}).allowed
    assert not gov.authorize("act", Resource("X", "1"), {"risk": 11}).allowed
    decision = gov.authorize("act", Resource("X", "1"), {})
    assert not decision.allowed and decision.errors


def test_policy_change_shows_in_later_entries(ledger: Ledger) -> None:
    strict = Policies(
        {
            "a.cedar": '@id("x") permit (principal, action == Action::"read", resource) when { context.n <= 5 };'
        }
    )
    loose = Policies(
        {
            "a.cedar": '@id("x") permit (principal, action == Action::"read", resource) when { context.n <= 50 };'
        }
    )
    assert strict.hash != loose.hash
    gov = Governor(ledger, strict)
    with pytest.raises(PolicyDenied):
        gov.run("read", Resource("Split", "train"), lambda: 1, context={"n": 10})
    gov.set_policies(loose)
    assert gov.run("read", Resource("Split", "train"), lambda: 1, context={"n": 10}) == 1
    entries = list(ledger.entries())
    assert [e["action"] for e in entries] == ["load_policies", "read", "load_policies", "read"]
    assert [e["policy_set"] for e in entries] == [strict.hash] * 2 + [loose.hash] * 2
    assert [e["decision"] for e in entries[1::2]] == ["deny", "allow"]
    # the policy texts themselves are kept and hash to the recorded value
    assert ledger.blob(loose.hash) == loose.canonical


def test_governed_decorator_records_inputs_outputs_and_errors(ledger: Ledger) -> None:
    policies = Policies(
        {
            "w.cedar": '@id("w") permit (principal, action == Action::"write_synthetic", resource) when { resource.n_real < 10 && context.requested <= 20 };'
        }
    )
    gov = Governor(ledger, policies, actor="augmenter", keep_content=True)
    written: list[tuple[int, int]] = []

    @governed(
        gov,
        resource=lambda item, n: Resource("Item", str(item), {"n_real": item}),
        context=lambda item, n: {"requested": n},
    )
    def write_synthetic(item: int, n: int) -> dict:
        if n == 13:
            raise ValueError("unlucky")
        written.append((item, n))
        return {"item": item, "written": n}

    assert write_synthetic(3, 5) == {"item": 3, "written": 5}
    ok = ledger.entry(gov.last_entry)
    assert ok["outcome"] == "ok" and ok["actor"] == "augmenter"
    assert ledger.blob(ok["inputs"]) == canonical_json(jsonable({"item": 3, "n": 5}))
    assert ledger.blob(ok["outputs"]) == canonical_json({"item": 3, "written": 5})
    with pytest.raises(PolicyDenied):
        write_synthetic(30, 5)
    with pytest.raises(PolicyDenied):
        write_synthetic(3, 21)
    with pytest.raises(ValueError, match="unlucky"):
        write_synthetic(4, 13)
    err = ledger.entry(gov.last_entry)
    assert err["outcome"] == "error" and "unlucky" in err["error"]
    assert written == [(3, 5)]
    assert verify_ledger(ledger.path).ok


def test_write_ahead_intent_precedes_outcome(ledger: Ledger) -> None:
    gov = Governor(
        ledger, Policies({"p.cedar": "permit (principal, action, resource);"}), write_ahead=True
    )
    gov.run("act", Resource("X", "1"), lambda: 7)
    intent, done = list(ledger.entries())[-2:]
    assert intent["outcome"] == "intent" and done["outcome"] == "ok"
    assert done["intent"] == intent["index"]


def test_packaged_policies_validate_against_their_schema(tmp_path: Path) -> None:
    policies = Policies.from_dir()
    assert "catalogue/never-read-test" in policies.ids and policies.schema
    (tmp_path / "bad.cedar").write_text(
        'permit (principal, action == Action::"read_split", resource) when { resource.prt == "train" };'
    )
    schema = Path(Policies.from_dir.__defaults__[0]) / "catalogue.cedarschema"  # type: ignore[index]
    (tmp_path / "catalogue.cedarschema").write_text(schema.read_text())
    with pytest.raises(ConfigError, match="bad.cedar"):
        Policies.from_dir(tmp_path)
    assert scaled(0.2) == 2000
