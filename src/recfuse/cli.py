"""The `recfuse` command line.

Each part of recfuse owns its commands in ``recfuse/<part>/cli.py`` (a `typer.Typer` named
``app``); this module mounts them under one name each and turns any `RecfuseError` into one line
on stderr with exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from recfuse.errors import RecfuseError

# command name -> (module holding `app`, help). Parts that are not installed are skipped.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "data": ("recfuse.data.cli", "List, describe and prepare datasets."),
    "run": ("recfuse.runs.cli", "Run one experiment from a YAML config."),
    "eval": ("recfuse.evaluation.cli", "Evaluate and compare runs."),
    "features": ("recfuse.features.cli", "Extract frozen-model item features."),
    "study": ("recfuse.studies.cli", "Run a study that answers a paper's question."),
    "llm": ("recfuse.llm.cli", "Run, inspect and export LLM jobs."),
    "ledger": ("recfuse.governance.cli", "Verify and prove entries of a tamper-evident ledger."),
    "agent": ("recfuse.governance.agent_cli", "Run a governed agent."),
    "classify": ("recfuse.classify.cli", "Hierarchical genre classification."),
    "audit": ("recfuse.audit.cli", "Clever-Hans leakage audits."),
    "generative": ("recfuse.generative.cli", "Semantic IDs and generative recommendation."),
    "report": ("recfuse.report.cli", "Write a self-contained HTML report of a run or study."),
}

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])


def _mount() -> None:
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that part does not exist (yet)
            raise
        sub = module.app
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name, help=help_text)
        else:
            app.command(name=name, help=help_text)(sub)


@app.command()
def demo(
    full: bool = typer.Option(False, help="Run the full preset instead of the fast one."),
) -> None:
    """The main job: the DFF study's fast preset on MicroLens-50k (see README)."""
    from recfuse.demo import run_demo

    run_demo(full=full)


def _aborted(exc: BaseException) -> int:
    """One line for click's ``Abort`` (which it raises for Ctrl-C and for any stray EOFError)."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        return 130
    if isinstance(cause, EOFError):
        typer.echo(f"error: unexpected end of input or of a file (EOFError: {cause})", err=True)
        return 1
    typer.echo("error: aborted", err=True)
    return 1


def main() -> None:
    _mount()
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except RecfuseError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Abort as exc:
        sys.exit(_aborted(exc))
    except Exception as exc:
        # usage errors of typer's (vendored) click carry their own message and exit code
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
