"""The catalogue agent on real data: the test split is never read, denials are real, all logged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recfuse.data import Dataset, load_dataset
from recfuse.governance.catalogue import CatalogueAgent, CatalogueStore, catalogue_tools
from recfuse.governance.governor import Governor, PolicyDenied
from recfuse.governance.ledger import Ledger
from recfuse.governance.policy import Policies
from recfuse.governance.toolbox import GovernedToolbox
from recfuse.governance.verify import verify_ledger
from recfuse.split import Split, make_split

Data = tuple[Dataset, Split]


class WatchedSplit:
    """A `Split` stand-in that remembers which of its parts anyone touched."""

    def __init__(self, split: Split) -> None:
        object.__setattr__(self, "_split", split)
        object.__setattr__(self, "touched", set())

    def __getattr__(self, name: str) -> Any:
        if name in ("train", "valid", "test"):
            self.touched.add(name)
        return getattr(self._split, name)

    def histories(self, stage: str) -> Any:
        self.touched.update({"train"} if stage == "valid" else {"train", "valid"})
        return self._split.histories(stage)


@pytest.fixture(scope="module")
def data() -> Data:
    dataset = load_dataset("amazon-scientific")
    return dataset, make_split(dataset, "leave_one_out", 0)


def _world(
    tmp_path: Path, data: Data, policies: Policies
) -> tuple[WatchedSplit, Ledger, CatalogueStore, GovernedToolbox]:
    dataset, split = data
    watched = WatchedSplit(split)
    ledger = Ledger(tmp_path / "ledger.db")
    governor = Governor(ledger, policies, actor="catalogue-agent")
    store = CatalogueStore(tmp_path / "catalogue.db")
    toolbox = catalogue_tools(GovernedToolbox(governor), dataset, watched, store)  # type: ignore[arg-type]
    return watched, ledger, store, toolbox


def test_tools_have_mcp_schemas(tmp_path: Path, data: Data) -> None:
    _, _, _, toolbox = _world(tmp_path, data, Policies.from_dir())
    schemas = {s["name"]: s for s in toolbox.schemas()}
    assert set(schemas) == {"read_split", "promote_item", "write_synthetic", "publish_slate"}
    part = schemas["read_split"]["input_schema"]["properties"]["part"]
    assert set(part["enum"]) == {"train", "valid", "test"}
    assert schemas["write_synthetic"]["input_schema"]["required"] == ["item", "n"]


def test_agent_never_reads_the_test_split(tmp_path: Path, data: Data) -> None:
    watched, ledger, store, toolbox = _world(tmp_path, data, Policies.from_dir())
    agent = CatalogueAgent(toolbox)
    report = agent.run(max_rounds=4)
    assert "test" not in watched.touched and {"train", "valid"} <= watched.touched
    with pytest.raises(PolicyDenied):
        toolbox.call("read_split", {"part": "test"})
    assert "test" not in watched.touched
    entries = list(ledger.entries())
    test_reads = [
        e for e in entries if e["action"] == "read_split" and e["resource"]["id"].endswith("/test")
    ]
    assert len(test_reads) == 2 and all(e["outcome"] == "denied" for e in test_reads)
    # every tool call the agent made is in the ledger, allowed or not
    outcomes = agent.perception + report.outcomes
    assert sorted(o.entry for o in outcomes) == [e["index"] for e in entries[1 : len(outcomes) + 1]]
    # the policies really bit on real data, and what they refused did not happen
    denied = {o.proposal.tool for o in report.outcomes if not o.allowed}
    assert {"promote_item", "write_synthetic"} <= denied
    counts = store.counts()
    allowed_syn = [o for o in report.outcomes if o.allowed and o.proposal.tool == "write_synthetic"]
    assert counts["synthetic"] == sum(o.result["written"] for o in allowed_syn)
    assert counts["promotions"] == sum(
        o.allowed for o in report.outcomes if o.proposal.tool == "promote_item"
    )
    for o in allowed_syn:
        assert store.synthetic_count(o.proposal.arguments["item"]) <= 20
    assert verify_ledger(ledger.path).ok


def test_cap_counts_earlier_runs(tmp_path: Path, data: Data) -> None:
    _, ledger, store, toolbox = _world(tmp_path, data, Policies.from_dir())
    tail_item = next(i for i in range(1000) if 0 < int((data[1].train["item"] == i).sum()) < 10)
    toolbox.call("write_synthetic", {"item": tail_item, "n": 15})
    with pytest.raises(PolicyDenied, match="synthetic-cap"):
        toolbox.call("write_synthetic", {"item": tail_item, "n": 6})
    toolbox.call("write_synthetic", {"item": tail_item, "n": 5})
    assert store.synthetic_count(tail_item) == 20


def test_a_permissive_policy_would_read_test(tmp_path: Path, data: Data) -> None:
    """The guard above can fail: with a policy that allows it, the tool does touch the test part."""
    permissive = Policies({"all.cedar": "permit (principal, action, resource);"})
    watched, _, _, toolbox = _world(tmp_path, data, permissive)
    result = toolbox.call("read_split", {"part": "test"})
    assert "test" in watched.touched and result["n_interactions"] == len(data[1].test)


def test_invalid_arguments_are_refused_and_logged(tmp_path: Path, data: Data) -> None:
    _, ledger, _, toolbox = _world(tmp_path, data, Policies.from_dir())
    with pytest.raises(PolicyDenied):
        toolbox.call("promote_item", {"item": 10**9, "score": 1.0})
    last = ledger.entry(ledger.size() - 1)
    assert last["decision"] == "deny" and last["reasons"] == ["invalid-arguments"]
    json.dumps(last)
