"""`recfuse llm run | status | export | serve`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Run, inspect and export LLM jobs."
)


def _run_record(folder: Path, config_path: Path, config: object, report: dict[str, object]) -> None:
    """Write the run's config, report and package versions into ``folder`` (atomically)."""
    from recfuse.atomic import write_json, write_text
    from recfuse.provenance import package_versions

    versions = package_versions(("httpx", "ray"))
    write_text(folder / "job.yaml", config_path.read_text(encoding="utf-8"))
    write_json(folder / "resolved_config.json", config.model_dump())  # type: ignore[attr-defined]
    write_json(folder / "report.json", report)
    write_json(folder / "versions.json", versions)


@app.command()
def run(
    job_file: Annotated[Path, typer.Argument(help="Job YAML (see docs/llm.md).")],
    executor: Annotated[str | None, typer.Option(help="local or ray (overrides the file).")] = None,
    workers: Annotated[int | None, typer.Option(help="Ray workers (overrides the file).")] = None,
    cache: Annotated[Path | None, typer.Option(help="Cache file (overrides the file).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where the run record folder goes.")] = Path(
        "runs"
    ),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run a job; only prompts without a stored answer are computed."""
    from recfuse.llm.job import LLMJob
    from recfuse.llm.job_config import load_job_config

    config = load_job_config(job_file)
    if executor is not None:
        config = config.model_copy(update={"executor": executor})
    if workers is not None:
        config = config.model_copy(update={"workers": workers})
    overrides: dict[str, object] = {"progress": progress}
    if cache is not None:
        overrides["cache"] = str(cache)
    job = LLMJob.from_config(config, base_dir=job_file.resolve().parent, **overrides)
    report = job.run(executor=config.executor, workers=config.workers)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = runs_dir / "llm" / f"{config.name}-{stamp}"
    summary = report.as_dict() | {"cache": str(job.cache.path)}
    _run_record(folder, job_file, config, summary)
    typer.echo(
        f"{config.name}: {report.total} prompts, {report.already_done} already answered, "
        f"{report.completed} completed, {report.failed} failed in {report.wall_seconds:.1f} s "
        f"({report.prompts_per_s:.2f} prompts/s, {report.tokens_per_s:.1f} tokens/s); "
        f"record in {folder}"
    )


@app.command()
def status(
    job: Annotated[
        str | None, typer.Argument(help="A job name (default: every job in the cache).")
    ] = None,
    cache: Annotated[
        Path | None, typer.Option(help="Cache file (default: $RECFUSE_CACHE/llm/cache.sqlite).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per job: prompts, answered, failed (by reason), remaining, tokens and model time."""
    from rich.console import Console
    from rich.table import Table

    from recfuse.llm.cache import LLMCache

    with LLMCache(cache) as store:
        names = [job] if job else store.job_names()
        statuses = [store.status(name) for name in names]
        runs = {name: store.job_runs(name) for name in names}
    if as_json:
        typer.echo(
            json.dumps(
                [
                    s.__dict__ | {"remaining": s.remaining, "runs": len(runs[s.job])}
                    for s in statuses
                ],
                indent=2,
            )
        )
        return
    table = Table(title=f"LLM jobs in {cache or 'the default cache'}")
    for column in (
        "job",
        "prompts",
        "ok",
        "failed",
        "remaining",
        "prompt tok",
        "gen tok",
        "model s",
        "runs",
        "failures by reason",
    ):
        table.add_column(column)
    for s in statuses:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(s.failure_reasons.items())) or "-"
        table.add_row(
            s.job,
            str(s.total),
            str(s.ok),
            str(s.failed),
            str(s.remaining),
            str(s.prompt_tokens),
            str(s.completion_tokens),
            f"{s.model_seconds:.1f}",
            str(len(runs[s.job])),
            reasons,
        )
    Console().print(table)


@app.command()
def export(
    job: Annotated[str, typer.Argument(help="Job name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write (atomically).")],
    cache: Annotated[
        Path | None, typer.Option(help="Cache file (default: $RECFUSE_CACHE/llm/cache.sqlite).")
    ] = None,
    only_ok: Annotated[bool, typer.Option(help="Leave out failures and pending prompts.")] = False,
) -> None:
    """Write a job's outputs as JSONL: id, status, raw_text, parsed, reason, tokens, seconds."""
    from recfuse.atomic import atomic_path
    from recfuse.llm.cache import LLMCache

    written = 0
    with LLMCache(cache) as store, atomic_path(out) as tmp, tmp.open("w", encoding="utf-8") as fh:
        store.status(job)  # raises a one-line error for an unknown job
        for row in store.job_outputs(job):
            if only_ok and row["status"] != "ok":
                continue
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    typer.echo(f"{job}: {written} rows -> {out}")


@app.command()
def serve(
    model: Annotated[
        str, typer.Option(help="smollm2, a local HF folder or a .gguf file.")
    ] = "smollm2",
    host: Annotated[
        str, typer.Option(help="Bind address (loopback unless you mean it).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    batch_size: Annotated[int, typer.Option(help="Most rows decoded together.")] = 8,
    threads: Annotated[
        int | None, typer.Option(help="torch threads (default: torch's choice).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Largest max_tokens accepted.")] = 512,
    max_body_bytes: Annotated[int, typer.Option(help="Larger bodies get 413.")] = 1_000_000,
    batch_window_ms: Annotated[
        float, typer.Option(help="Wait this long after the latest arrival for more (max 4x).")
    ] = 50.0,
    max_queue: Annotated[int, typer.Option(help="Rows waiting at once; more get 429.")] = 64,
) -> None:
    """Serve a local model over an OpenAI-compatible HTTP API (/v1/models, /v1/chat/completions,
    /v1/completions with echo + logprobs; streaming, n, stop, seed; batched; see docs/llm.md)."""
    from recfuse.llm.serve import serve as run_server
    from recfuse.llm.serve_schema import ServeLimits

    limits = ServeLimits(
        max_tokens=max_tokens,
        max_body_bytes=max_body_bytes,
        max_batch=batch_size,
        batch_window_s=batch_window_ms / 1000,
        max_queue=max_queue,
    )
    run_server(model=model, host=host, port=port, threads=threads, limits=limits)
