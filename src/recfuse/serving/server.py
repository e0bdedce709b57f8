"""Start `recfuse serve`: load the run once, gate it, serve it with uvicorn until SIGTERM."""

from __future__ import annotations

from pathlib import Path

from recfuse.serving.app import Limits, Service, create_app
from recfuse.serving.gate import ServingGate

#: a SIGTERM ends open requests within this many seconds (the issue asks for under 2 s)
GRACEFUL_S = 1


def build_service(
    run: str | Path,
    policy: str | Path | None = None,
    gate: bool = True,
    ledger: str | Path | None = None,
    limits: Limits | None = None,
) -> Service:
    """The loaded model, its gate and limits; the ledger defaults to ``RUN/ledger.db``."""
    from recfuse.runs.load import load_run

    run = Path(run)
    model = load_run(run)
    serving_gate = ServingGate(ledger or run / "ledger.db", policy, enabled=gate)
    return Service(model, serving_gate, limits or Limits(), run if run.is_dir() else None)


def serve(service: Service, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until SIGTERM/SIGINT; then sign a last checkpoint and close the ledger."""
    import uvicorn

    config = uvicorn.Config(
        create_app(service),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_S,
        timeout_keep_alive=5,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        service.batcher.close()
        service.gate.close()
