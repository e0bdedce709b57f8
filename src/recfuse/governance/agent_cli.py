"""`recfuse agent ...`: run a governed agent on real data and leave a verifiable ledger behind."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from recfuse.atomic import write_json, write_text
from recfuse.provenance import package_versions

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

PACKAGES = ("recfuse", "cedarpy", "mcp", "cryptography", "numpy", "pandas")


def _versions() -> dict[str, str]:
    return package_versions(PACKAGES)


def _summary(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 70 else text[:67] + "..."


@app.command()
def catalogue(
    dataset: Annotated[
        str, typer.Option(help="A dataset name from `recfuse data`.")
    ] = "amazon-scientific",
    protocol: Annotated[str, typer.Option(help="Split protocol.")] = "leave_one_out",
    seed: Annotated[int, typer.Option(help="Split seed.")] = 0,
    rounds: Annotated[int, typer.Option(help="Most perceive-conceptualize-act rounds.")] = 4,
    policies: Annotated[
        Path | None,
        typer.Option(help="Folder of .cedar files (default: the packaged catalogue policies)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Run folder; reusing one continues its ledger and catalogue."),
    ] = None,
    durable: Annotated[bool, typer.Option(help="fsync every ledger commit.")] = False,
) -> None:
    """The worked example: a catalogue agent under Cedar policies, every call in the ledger."""
    from rich.console import Console
    from rich.table import Table

    from recfuse.data import load_dataset
    from recfuse.governance.catalogue import CatalogueAgent, CatalogueStore, catalogue_tools
    from recfuse.governance.governor import Governor
    from recfuse.governance.ledger import Ledger
    from recfuse.governance.policy import POLICY_DIR, Policies
    from recfuse.governance.toolbox import GovernedToolbox
    from recfuse.governance.verify import verify_ledger
    from recfuse.split import make_split

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = out or Path("runs") / "agent-catalogue" / f"{dataset}-{protocol}-seed{seed}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    policy_set = Policies.from_dir(policies or POLICY_DIR)
    data = load_dataset(dataset)
    split = make_split(data, protocol, seed)
    split.save(folder / "split")
    write_json(
        folder / "config.json",
        {
            "command": "recfuse agent catalogue",
            "dataset": dataset, "protocol": protocol, "seed": seed, "rounds": rounds,
            "policies": str(policies or POLICY_DIR), "policy_set": policy_set.hash,
            "policy_ids": list(policy_set.ids), "durable": durable, "split": split.summary(),
            "versions": _versions(), "threads": os.environ.get("OMP_NUM_THREADS"), "started": stamp,
        },
    )  # fmt: skip
    ledger = Ledger(folder / "ledger.db", durable=durable)
    store = CatalogueStore(folder / "catalogue.db")
    governor = Governor(ledger, policy_set, actor="catalogue-agent")
    toolbox = catalogue_tools(GovernedToolbox(governor), data, split, store)
    agent = CatalogueAgent(toolbox)
    report = agent.run(max_rounds=rounds)
    cp = ledger.checkpoint()

    records = _action_records(agent, report)
    verdict = verify_ledger(ledger.path)
    summary = {
        "ledger": str(ledger.path), "entries": ledger.size(), "root": cp.root.hex(),
        "checkpoint": cp.to_json(), "verified": verdict.ok, "catalogue": store.counts(),
        "allowed": sum(bool(r["allowed"]) for r in records),
        "denied": sum(not r["allowed"] for r in records),
        "actions": records,
    }  # fmt: skip
    write_json(folder / "report.json", summary)
    header = f"# Catalogue agent run ({dataset}, {protocol}, seed {seed})"
    write_text(folder / "report.md", _report_markdown(header, policy_set.hash, summary, verdict.ok))
    console = Console(width=180)
    table = Table("step", "entry", "tool", "arguments", "decision", "result / reason")
    for r in records:
        table.add_row(
            r["step"], str(r["entry"]), r["tool"], _summary(r["arguments"]),
            "allow" if r["allowed"] else "DENY", _summary(r["result"]),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"{summary['allowed']} allowed, {summary['denied']} denied; catalogue now {store.counts()}\n"
        f"ledger {ledger.path}: {ledger.size()} entries, signed checkpoint {cp.seq} root {cp.root.hex()}, "
        f"verify: {'OK' if verdict.ok else 'FAILED'}\n"
        f"check it yourself: recfuse ledger verify {ledger.path}"
    )
    toolbox.close()
    store.close()
    ledger.close()


def _action_records(agent: Any, report: Any) -> list[dict[str, Any]]:
    """One JSON-able record per agent action (perception, then each round), denials with the
    policy's reason in place of a result."""
    rows = [("perceive", o) for o in agent.perception]
    rows += [(f"round {r + 1}", o) for r, outs in enumerate(report.rounds) for o in outs]
    records: list[dict[str, Any]] = []
    for step, o in rows:
        result = o.result if o.allowed else o.reason.split(" denied by policy: ")[-1]
        if isinstance(result, dict) and "item_counts" in result:
            result = {"part": result["part"], "n_interactions": result["n_interactions"]}
        records.append(
            {"step": step, "entry": o.entry, "tool": o.proposal.tool,
             "arguments": dict(o.proposal.arguments), "why": o.proposal.why,
             "allowed": o.allowed, "result": result}
        )  # fmt: skip
    return records


def _report_markdown(header: str, policy_hash: str, summary: dict[str, Any], ok: bool) -> str:
    lines = [
        header, "",
        f"- policy set `{policy_hash}`",
        f"- {summary['allowed']} actions allowed, {summary['denied']} denied",
        f"- ledger `{summary['ledger']}`: {summary['entries']} entries, root `{summary['root']}`, verified: {ok}",
        "", "| step | entry | tool | decision | result / reason |", "|---|---|---|---|---|",
    ]  # fmt: skip
    lines += [
        f"| {r['step']} | {r['entry']} | {r['tool']} | {'allow' if r['allowed'] else 'DENY'} | "
        f"{_summary(r['result'])} |"
        for r in summary["actions"]
    ]
    return "\n".join(lines) + "\n"


@app.command()
def ask(
    prompt: Annotated[str, typer.Argument(help="What to ask the model.")],
    ledger_path: Annotated[
        Path, typer.Option("--ledger", help="Ledger file (created if missing).")
    ] = Path("runs/agent-ask/ledger.db"),
    kind: Annotated[
        str, typer.Option(help="LLM backend kind (transformers, llamacpp, http).")
    ] = "transformers",
    model: Annotated[str, typer.Option(help="Model name or folder.")] = "smollm2",
    max_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 48,
    threads: Annotated[int, typer.Option(help="CPU threads for a local model.")] = 1,
    policies: Annotated[
        Path | None,
        typer.Option(help="Folder of .cedar files (default: the packaged LLM policies)."),
    ] = None,
) -> None:
    """Ask an LLM through the policy gate; the prompt and answer are kept beside the ledger."""
    from recfuse.governance.governor import Governor, PolicyDenied
    from recfuse.governance.ledger import Ledger
    from recfuse.governance.llm_gate import LLM_POLICY_DIR, GovernedLLM
    from recfuse.governance.policy import Policies
    from recfuse.llm import GenerationParams, load_llm

    policy_set = Policies.from_dir(policies or LLM_POLICY_DIR)
    with Ledger(ledger_path) as ledger:
        governor = Governor(ledger, policy_set, actor="cli-user", keep_content=True)
        llm = GovernedLLM(load_llm(kind, model, threads=threads), governor)
        try:
            answer = llm.generate([prompt], GenerationParams(max_tokens=max_tokens))[0]
        except PolicyDenied as denied:
            typer.echo(f"denied: {denied}")
            raise SystemExit(1) from denied
        entry = ledger.entry(governor.last_entry or 0)
        cp = ledger.checkpoint()
    typer.echo(answer.text)
    typer.echo(
        f"\nledger entry {entry['index']} ({entry['decision']}, policies {', '.join(entry['reasons'])}); "
        f"inputs {entry['inputs']}, outputs {entry['outputs']}; checkpoint {cp.seq} signed.\n"
        f"prove it: recfuse ledger prove {ledger_path} {entry['index']}; "
        f"show what was asked: recfuse ledger blob {ledger_path} {entry['inputs']}"
    )
