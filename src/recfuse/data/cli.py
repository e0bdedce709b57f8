"""`recfuse data list | describe NAME | prepare NAME`."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """Known datasets, their kind and where they are found (or that they are missing)."""
    from recfuse.data.catalog import CATALOG
    from recfuse.data.locate import candidate_dirs

    for spec in CATALOG.values():
        names = [f if isinstance(f, str) else f.name for f in spec.files]
        found = next(
            (d for d in candidate_dirs(spec.name) if all((d / n).is_file() for n in names)), None
        )
        where = str(found) if found else "not found locally"
        typer.echo(f"{spec.name:18s} {spec.kind:12s} {spec.description}\n{'':31s}{where}")


@app.command()
def describe(
    name: str,
    data_dir: str | None = typer.Option(
        None, help="Folder that holds <name>/ (else RECFUSE_DATA_DIR, ../shared/data, cache)."
    ),
) -> None:
    """Statistics of one dataset (counts, density, sequence lengths, popularity skew)."""
    from recfuse.data.catalog import get_spec, load_dataset, load_table

    spec = get_spec(name)
    if spec.kind == "table":
        table = load_table(name, data_dir)
        typer.echo(f"{name}: {len(table):,} rows; columns: {', '.join(map(str, table.columns))}")
        return
    for key, value in load_dataset(name, data_dir).stats().items():
        typer.echo(
            f"{key:26s} {value:,.4g}"
            if isinstance(value, float)
            else f"{key:26s} {value:,}"
            if isinstance(value, int)
            else f"{key:26s} {value}"
        )


@app.command()
def prepare(
    name: str,
    data_dir: str | None = typer.Option(None, help="Folder that holds <name>/."),
) -> None:
    """Find (or download) a dataset's files, check every SHA-256 and load it once to validate."""
    from recfuse.data.catalog import dataset_folder, get_spec, load_dataset, load_table

    folder = dataset_folder(name, data_dir, rehash=True)  # always hash every pinned file
    loaded = (
        load_table(name, data_dir)
        if get_spec(name).kind == "table"
        else load_dataset(name, data_dir)
    )
    size = (
        len(loaded)
        if hasattr(loaded, "__len__") and not hasattr(loaded, "n_items")
        else getattr(loaded, "n_interactions", 0)
    )
    typer.echo(f"{name}: ready in {folder} ({size:,} rows)")
