"""`recfuse serve --run R`: an audited recommendation API over a saved run."""

from __future__ import annotations

import typer


def main(
    run: str = typer.Option(..., "--run", help="A run folder (or model folder) to serve."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535),
    policy: str = typer.Option(None, help="Folder of Cedar policies (default: the shipped one)."),
    ledger: str = typer.Option(None, help="Ledger file (default: RUN/ledger.db)."),
    no_gate: bool = typer.Option(False, "--no-gate", help="Serve without gate or ledger."),
    max_k: int = typer.Option(100, min=1, max=10_000),
    max_history: int = typer.Option(2000, min=1),
    max_body: int = typer.Option(65_536, min=1024, help="Largest request body in bytes."),
    timeout: float = typer.Option(5.0, min=0.1, help="Seconds one request may take."),
    threads: int = typer.Option(1, min=1, help="Torch threads for scoring."),
) -> None:
    """Serve recommendations, explanations and the run's report; every request is audited."""
    import torch

    from recfuse.serving.app import Limits
    from recfuse.serving.server import build_service, serve

    torch.set_num_threads(threads)
    limits = Limits(
        max_k=max_k, max_history=max_history, max_body_bytes=max_body, timeout_s=timeout
    )
    service = build_service(run, policy, not no_gate, ledger, limits)
    gate = (
        "off" if no_gate else f"ledger {service.gate.ledger.path if service.gate.ledger else '-'}"
    )
    typer.echo(f"serving {service.model.name} on http://{host}:{port} (gate {gate})", err=True)
    serve(service, host, port)


app = main
