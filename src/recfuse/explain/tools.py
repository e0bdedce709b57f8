"""The agent's fixed, typed tool set; every call passes the Cedar gate and lands in the ledger.

Each tool takes pydantic-validated arguments and returns numbers (a dict) plus a short text the
explanation may cite. The numbers are what the deterministic checks hold an explanation to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recfuse.explain.field import FEATURES, ZONES, FieldAnalysis, Prices
from recfuse.governance.governor import Governor
from recfuse.governance.ledger import Ledger
from recfuse.governance.policy import Policies, Resource

POLICY_DIR = Path(__file__).parent / "policies"
Zone = Literal["W", "HT", "E", "LO"]


class PartialDependence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Literal["partial_dependence"] = "partial_dependence"
    zone: Zone | None = None


class ShapInteraction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Literal["shap_interaction"] = "shap_interaction"
    a: Literal["nitro", "topo", "bv", "year"] = "nitro"
    b: Literal["nitro", "topo", "bv", "year"] = "topo"


class ProfitTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Literal["profit_table"] = "profit_table"


class PriceSensitivity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Literal["price_sensitivity"] = "price_sensitivity"
    n_price_factor: float = Field(1.5, ge=0.25, le=4.0)


class WhatIf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Literal["what_if"] = "what_if"
    zone: Zone = "HT"
    nitro: float = Field(100.0, ge=0.0, le=140.0)


ToolCall = PartialDependence | ShapInteraction | ProfitTable | PriceSensitivity | WhatIf
TOOLS: dict[str, type[BaseModel]] = {
    "partial_dependence": PartialDependence,
    "shap_interaction": ShapInteraction,
    "profit_table": ProfitTable,
    "price_sensitivity": PriceSensitivity,
    "what_if": WhatIf,
}


def run_tool(call: BaseModel, analysis: FieldAnalysis) -> dict[str, Any]:
    """The tool's numeric result: ``{"text": str, "numbers": [float, ...], ...}``."""
    if isinstance(call, PartialDependence):
        curve = analysis.response(call.zone)
        where = f"zone {call.zone}" if call.zone else "the whole field"
        picks = [0, 6, 12, 18, 24, 28]
        pairs = [(float(analysis.n_grid[i]), round(float(curve[i]), 1)) for i in picks]
        text = f"Predicted yield (q/ha) by N rate (kg/ha) in {where}: " + ", ".join(
            f"N {n:g}: {y:g}" for n, y in pairs
        )
        return {"text": text, "numbers": [v for p in pairs for v in p]}
    if isinstance(call, ShapInteraction):
        value = round(analysis.shap_interaction(call.a, call.b), 2)
        text = f"Mean absolute SHAP interaction between {call.a} and {call.b}: {value:g} q/ha"
        return {"text": text, "numbers": [value]}
    if isinstance(call, ProfitTable):
        return _profit(analysis, analysis.prices, "")
    if isinstance(call, PriceSensitivity):
        p = analysis.prices
        scaled = Prices(p.corn_per_q, round(p.n_per_kg * call.n_price_factor, 3))
        return _profit(analysis, scaled, f"With N at ${scaled.n_per_kg:g}/kg: ")
    if isinstance(call, WhatIf):
        curve = analysis.response(call.zone)
        y = round(float(np.interp(call.nitro, analysis.n_grid, curve)), 1)
        p = analysis.prices
        profit = round(p.corn_per_q * y - p.n_per_kg * call.nitro, 1)
        text = (
            f"What if zone {call.zone} gets N {call.nitro:g} kg/ha: predicted yield {y:g} q/ha, "
            f"profit ${profit:g}/ha at corn ${p.corn_per_q:g}/q and N ${p.n_per_kg:g}/kg"
        )
        return {"text": text, "numbers": [call.nitro, y, profit, p.corn_per_q, p.n_per_kg]}
    raise TypeError(f"not a tool call: {call!r}")


def _profit(analysis: FieldAnalysis, prices: Prices, prefix: str) -> dict[str, Any]:
    table = analysis.profit_table(prices)
    parts, numbers = [], [prices.corn_per_q, prices.n_per_kg]
    for row in table.itertuples(index=False):
        n, y, pr = (round(float(v), 1) for v in (row[1], row[2], row[3]))
        lo, hi = round(float(row[4]), 1), round(float(row[5]), 1)
        parts.append(
            f"zone {row[0]}: best N {n:g} kg/ha (90% band {lo:g}-{hi:g}), "
            f"yield {y:g} q/ha, profit ${pr:g}/ha"
        )
        numbers += [n, lo, hi, y, pr]
    text = (
        prefix + f"Profit-optimal N at corn ${prices.corn_per_q:g}/q, N ${prices.n_per_kg:g}/kg — "
    )
    return {"text": text + "; ".join(parts), "numbers": numbers}


def shap_summary(analysis: FieldAnalysis) -> dict[str, Any]:
    """Round 0's input: mean |SHAP| per feature and the field's average yield."""
    importance = analysis.shap_importance()
    ranked = sorted(importance.items(), key=lambda kv: -kv[1])
    mean_yield = round(float(analysis.frame["yield"].mean()), 1)
    text = (
        f"Yield model of a corn field (mean yield {mean_yield:g} q/ha, years 1999 and 2001). "
        "Mean absolute SHAP value per factor (q/ha): "
        + ", ".join(f"{_LABEL[f]} {v:.1f}" for f, v in ranked)
    )
    return {"text": text, "numbers": [mean_yield, 1999, 2001, *(round(v, 1) for _, v in ranked)]}


_LABEL = {
    "nitro": "nitrogen rate",
    "topo": "topographic zone",
    "bv": "soil brightness",
    "year": "year",
}
assert set(_LABEL) == set(FEATURES) and set(ZONES) == {"W", "HT", "E", "LO"}


class ToolGate:
    """The Cedar gate over tool calls, with its ledger (one entry per call, allowed or not).

    ``tools`` (name -> argument model), ``runner`` (validated call, subject -> result) and
    ``policy_dir`` make one use's tool set; the defaults are the agronomy tools.
    """

    def __init__(
        self,
        ledger_path: str | Path,
        actor: str = "xai-agent",
        tools: Mapping[str, type[BaseModel]] | None = None,
        runner: Callable[[Any, Any], dict[str, Any]] = run_tool,
        policy_dir: Path = POLICY_DIR,
    ) -> None:
        self.tools = dict(TOOLS if tools is None else tools)
        self.runner = runner
        self.ledger = Ledger(ledger_path)
        self.governor = Governor(self.ledger, Policies.from_dir(policy_dir), actor=actor)

    def call(self, name: str, arguments: dict[str, Any], analysis: Any) -> dict[str, Any]:
        """Validate, gate, run and log one tool call; `PolicyDenied` for a tool not allowed."""
        known = name in self.tools
        resource = Resource("Tool", name, {"known": known})
        context = {"n_arguments": len(arguments)}

        def execute() -> dict[str, Any]:
            call = self.tools[name].model_validate({"tool": name, **arguments})
            return self.runner(call, analysis)

        return self.governor.run(
            "call_tool",
            resource,
            execute,
            context=context,
            inputs={"tool": name, "arguments": arguments},
        )

    def close(self) -> None:
        if self.ledger.size() > 0:
            self.ledger.checkpoint()
        self.ledger.close()
