"""`GovernedToolbox`: agent tools as MCP tools, each call gated by policy and written to the ledger.

Tools are plain typed Python functions registered on an MCP server (``mcp.server.mcpserver.
MCPServer``, the MCP Python SDK), which derives each tool's JSON input schema from its signature and
validates arguments against it. An agent sees the schemas (`schemas`) and calls a tool by name with
JSON arguments (`call`); the toolbox asks the `Governor` before the MCP server executes anything.
The same server can be exposed to an outside MCP client (``toolbox.server.run(...)``), and then
every call from there passes the same gate only if it goes through `call` — so keep the server
private and export the toolbox.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult

from recfuse.errors import ConfigError
from recfuse.governance.governor import Governor, PolicyDenied
from recfuse.governance.policy import Decision, Resource


@dataclass(frozen=True)
class ToolSpec:
    """How one tool call maps onto a policy request."""

    name: str
    resource: Callable[..., Resource]
    context: Callable[..., Mapping[str, Any]]


class GovernedToolbox:
    """A set of MCP tools whose every call passes ``governor``."""

    def __init__(self, governor: Governor, name: str = "recfuse-tools") -> None:
        self.governor = governor
        self.server = MCPServer(name)
        self._specs: dict[str, ToolSpec] = {}
        self._loop = asyncio.new_event_loop()

    def close(self) -> None:
        self._loop.close()

    def tool(
        self,
        resource: Callable[..., Resource],
        context: Callable[..., Mapping[str, Any]] | None = None,
        name: str | None = None,
        description: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a function as a tool. ``resource``/``context`` receive the call's arguments."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            tool_name = name or fn.__name__
            self.server.add_tool(fn, name=tool_name, description=description or fn.__doc__)
            self._specs[tool_name] = ToolSpec(tool_name, resource, context or (lambda **_: {}))
            return fn

        return register

    def schemas(self) -> list[dict[str, Any]]:
        """MCP tool descriptions: name, description, JSON input schema."""
        tools = self._loop.run_until_complete(self.server.list_tools())
        return [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in tools
        ]

    def call(self, name: str, arguments: Mapping[str, Any], actor: str | None = None) -> Any:
        """Gate, execute (through the MCP server) and log one tool call; returns its JSON result.

        Raises `PolicyDenied` when the policies refuse it (the tool does not run) and
        `ConfigError` for an unknown tool or arguments the tool cannot describe.
        """
        spec = self._specs.get(name)
        arguments = dict(arguments)
        if spec is None:
            raise ConfigError(f"unknown tool {name!r}; tools: {sorted(self._specs)}")
        try:
            resource = spec.resource(**arguments)
            context = dict(spec.context(**arguments))
        except (TypeError, KeyError, ValueError) as exc:
            # Still an attempted action: log it as refused, with the arguments' digest.
            decision = Decision(
                False, ("invalid-arguments",), (str(exc),), self.governor.policies.hash
            )
            resource = Resource("Tool", name)
            entry = self.governor.ledger.append(
                {
                    "actor": actor or self.governor.actor,
                    "action": name,
                    "resource": resource.uid(),
                    "inputs": _digest(arguments),
                    "decision": "deny",
                    "reasons": ["invalid-arguments"],
                    "policy_set": decision.policy_set,
                    "outcome": "denied",
                    "outputs": None,
                    "error": str(exc)[:500],
                }
            )
            raise PolicyDenied(name, resource, decision, entry) from exc
        return self.governor.run(
            name, resource, self._execute, name, arguments, context=context, actor=actor,
            inputs=arguments,
        )  # fmt: skip

    def _execute(self, name: str, arguments: dict[str, Any]) -> Any:
        result = self._loop.run_until_complete(self.server.call_tool(name, arguments))
        if not isinstance(result, CallToolResult):  # the tool asked the client for more input
            raise RuntimeError(
                f"tool {name!r} asked for interactive input, which agents cannot give"
            )
        if getattr(result, "is_error", False):
            raise RuntimeError(" ".join(getattr(c, "text", "") for c in result.content))
        structured = getattr(result, "structured_content", None)
        if structured is not None:
            return structured.get("result", structured) if len(structured) == 1 else structured
        texts = [getattr(c, "text", "") for c in result.content]
        if len(texts) == 1:
            try:
                return json.loads(texts[0])
            except ValueError:
                return texts[0]
        return texts


def _digest(value: Any) -> str:
    from recfuse.governance.digest import digest

    return digest(value)
