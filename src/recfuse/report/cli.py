"""`recfuse report FOLDER`: write a self-contained HTML report of a run or study folder."""

from __future__ import annotations

import typer


def main(
    folder: str = typer.Argument(..., help="A run folder (metrics.json) or study folder."),
    out: str = typer.Option(None, help="Output file (default: FOLDER/report.html)."),
) -> None:
    """Write one self-contained HTML page: config, data, metrics, slices, curves, verdicts."""
    from recfuse.report.build import build_report

    path = build_report(folder, out)
    typer.echo(f"report: {path}")


app = main
