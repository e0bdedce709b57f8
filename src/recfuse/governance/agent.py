"""A governed agent: perception -> conceptualization -> action, every step through the toolbox.

`perceive` gathers what the agent may see (by calling tools, so reads are gated too);
`conceptualize` turns that into `Proposal`s (tool name + JSON arguments + why); `act` executes
each proposal through the `GovernedToolbox`: the policy gate decides, the ledger records, and a
denial is an ordinary outcome the agent sees in its next round, not a crash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from recfuse.governance.governor import PolicyDenied
from recfuse.governance.toolbox import GovernedToolbox


@dataclass(frozen=True)
class Proposal:
    """One action the agent wants to take."""

    tool: str
    arguments: dict[str, Any]
    why: str


@dataclass
class Outcome:
    """What happened to a proposal: allowed or denied, the ledger entry, the result or reason."""

    proposal: Proposal
    allowed: bool
    entry: int | None
    result: Any = None
    reason: str = ""


@dataclass
class CycleReport:
    rounds: list[list[Outcome]] = field(default_factory=list)

    @property
    def outcomes(self) -> list[Outcome]:
        return [o for r in self.rounds for o in r]


class Agent(ABC):
    """Base class: subclasses define `perceive` and `conceptualize`."""

    def __init__(self, toolbox: GovernedToolbox, name: str) -> None:
        self.toolbox = toolbox
        self.name = name

    def use(self, tool: str, **arguments: Any) -> Outcome:
        """Call one tool through the gate; a denial comes back as an `Outcome`, not an exception."""
        proposal = Proposal(tool, arguments, "perception")
        return self._execute(proposal)

    def _execute(self, proposal: Proposal) -> Outcome:
        try:
            result = self.toolbox.call(proposal.tool, proposal.arguments, actor=self.name)
        except PolicyDenied as denied:
            return Outcome(proposal, False, denied.entry, reason=str(denied))
        return Outcome(proposal, True, self.toolbox.governor.last_entry, result=result)

    @abstractmethod
    def perceive(self, previous: list[Outcome]) -> dict[str, Any]:
        """Observe the world (through tools); ``previous`` is the last round's outcomes."""

    @abstractmethod
    def conceptualize(self, observation: dict[str, Any], previous: list[Outcome]) -> list[Proposal]:
        """Decide what to do; an empty list ends the cycle."""

    def act(self, proposals: list[Proposal]) -> list[Outcome]:
        return [self._execute(p) for p in proposals]

    def run(self, max_rounds: int = 3) -> CycleReport:
        """Perceive, conceptualize and act until nothing is proposed or ``max_rounds`` pass."""
        report = CycleReport()
        previous: list[Outcome] = []
        for _ in range(max_rounds):
            observation = self.perceive(previous)
            proposals = self.conceptualize(observation, previous)
            if not proposals:
                break
            previous = self.act(proposals)
            report.rounds.append(previous)
        return report
