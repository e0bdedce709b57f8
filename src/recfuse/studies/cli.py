"""`recfuse study NAME ...`: each study module in this package exposes a typer-style ``main``."""

from __future__ import annotations

import importlib

import typer

# study name -> module; a module that is not present yet is skipped.
STUDIES = {
    "baselines": "recfuse.studies.baselines",
    "dff": "recfuse.studies.dff",
    "cemg": "recfuse.studies.cemg",
    "higemine": "recfuse.studies.higemine",
    "leakage": "recfuse.studies.leakage",
}

app = typer.Typer(no_args_is_help=True)

for _name, _module in STUDIES.items():
    try:
        _main = importlib.import_module(_module).main
    except ModuleNotFoundError as _exc:
        if _exc.name and _module.startswith(_exc.name):
            continue
        raise
    app.command(
        name=_name, help=(_main.__doc__ or "").strip().splitlines()[0] if _main.__doc__ else None
    )(_main)
