"""`recfuse audit`: Clever-Hans leakage audits (see docs/leakage.md)."""

from __future__ import annotations

import re
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Clever-Hans leakage audits.")


@app.callback()
def _group() -> None:
    """Clever-Hans leakage audits."""


def default_out(dataset: str, group: str, target: str, context: str | None) -> Path:
    """A stable run folder per question, so a rerun with the same config resumes."""
    name = "__".join(p for p in (dataset, group, target, context) if p)
    return Path("runs") / "audit" / re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


@app.command("leakage")
def leakage(
    dataset: str = typer.Option(..., help="Dataset name (recfuse data list)."),
    group: str = typer.Option(..., help="Group column: who made the item (author, assay, brand)."),
    target: str = typer.Option(..., help="Target column, or a derived one (genre, popularity)."),
    context: str | None = typer.Option(None, help="Context column the group-only model may see."),
    seeds: int = typer.Option(5, min=1, help="Number of seeds (0..N-1)."),
    out: Path | None = typer.Option(None, help="Run folder (default runs/audit/<question>)."),
    features: str = typer.Option("auto", help="auto, morgan, tfidf or minilm."),
    task: str | None = typer.Option(None, help="regression or classification (default: inferred)."),
    max_groups: int | None = typer.Option(None, help="Keep this many random groups (seed 0)."),
    probe: str = typer.Option("knn", help="Group probe: knn or mlp."),
    folds: int = typer.Option(5, min=2, help="Folds for out-of-fold group probabilities."),
    data_dir: Path | None = typer.Option(None, help="Folder holding the dataset folders."),
    threads: int = typer.Option(1, min=1, help="torch threads."),
) -> None:
    """Run the three probes and write report.md / report.json with the verdict."""
    import torch

    from recfuse.audit.audit import AuditConfig, run_audit
    from recfuse.audit.cases import load_audit_table
    from recfuse.audit.provenance import write_run_config
    from recfuse.audit.report import build_report, write_report
    from recfuse.errors import ConfigError

    torch.set_num_threads(threads)
    if task not in (None, "regression", "classification"):
        raise ConfigError(f"--task: {task!r} is not regression or classification")
    table = load_audit_table(
        dataset,
        group,
        target,
        context,
        features=features,
        task=task,  # type: ignore[arg-type]
        max_groups=max_groups,
        data_dir=data_dir,
    )
    config = AuditConfig(seeds=tuple(range(seeds)), probe=probe, n_folds=folds)
    folder = out or default_out(dataset, group, target, context)
    inputs = {
        "dataset": dataset,
        "group": group,
        "target": target,
        "context": context,
        "features": table.feature_kind,
        "task": table.task,
        "max_groups": max_groups,
        "audit": config.to_json(),
        "notes": table.notes,
    }
    write_run_config(folder, inputs)
    records = run_audit(table, config, folder)
    markdown, payload = build_report(table, records, config.to_json())
    write_report(folder, markdown, payload)
    typer.echo(markdown)
    typer.echo(f"\nwritten: {folder / 'report.md'}, {folder / 'report.json'}")
