"""The `recfuse` command line.

Each part of recfuse owns its commands in ``recfuse/<part>/cli.py`` (a `typer.Typer` named
``app``, or one function); this module mounts them under one name each and turns any
`RecfuseError` into one line on stderr with exit code 2.

Mounting is lazy: only the command being run is imported. Every other name is mounted as a
placeholder carrying its help line, so ``recfuse --help`` lists everything without importing
torch (about 0.3 s instead of 5 s).
"""

from __future__ import annotations

import importlib
import sys

import typer

from recfuse import __version__
from recfuse.errors import RecfuseError

# command name -> ("module" holding `app`, or "module:function", help).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "data": ("recfuse.data.cli", "List, describe and prepare datasets."),
    "run": ("recfuse.runs.cli", "Run one experiment from a YAML config."),
    "recommend": ("recfuse.runs.recommend_cli:recommend", "Top-K items for a user of a run."),
    "export": ("recfuse.runs.recommend_cli:export", "Every user's top-K of a run to Parquet."),
    "models": ("recfuse.runs.recommend_cli:models", "Every model, its parameters and defaults."),
    "tune": ("recfuse.runs.tune_cli:tune", "Hyper-parameter search (Optuna) for a run config."),
    "eval": ("recfuse.evaluation.cli", "Evaluate and compare runs."),
    "features": ("recfuse.features.cli", "Extract frozen-model item features."),
    "study": ("recfuse.studies.cli", "Run a study that answers a paper's question."),
    "llm": ("recfuse.llm.cli", "Run, inspect and export LLM jobs."),
    "ledger": ("recfuse.governance.cli", "Verify and prove entries of a tamper-evident ledger."),
    "agent": ("recfuse.governance.agent_cli", "Run a governed agent."),
    "classify": ("recfuse.classify.cli", "Hierarchical genre classification."),
    "audit": ("recfuse.audit.cli", "Clever-Hans leakage audits."),
    "generative": ("recfuse.generative.cli", "Semantic IDs and generative recommendation."),
    "explain": (
        "recfuse.explain.cli:explain",
        "Explain one recommendation of a run: SHAP, an LLM agent, scored rounds.",
    ),
    "report": ("recfuse.report.cli", "Write a self-contained HTML report of a run or study."),
    "serve": ("recfuse.serving.cli", "Serve a run over HTTP; every request gated and audited."),
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recfuse {__version__}")
        raise typer.Exit()


def demo(
    sets: list[str] = typer.Option(
        [], "--set", help="Override a field of the demo preset, e.g. --set seeds=[0]."
    ),
) -> None:
    """The main job: the DFF study's demo preset on Amazon-Scientific, all users (see README)."""
    from recfuse.demo import run_demo

    run_demo(sets)


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """recfuse: frozen foundation models for recommender systems, measured and accountable."""


def _mount_one(app: typer.Typer, name: str, target: str, help_text: str) -> None:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return  # that part does not exist (yet)
        raise
    sub = getattr(module, attr or "app")
    if isinstance(sub, typer.Typer):
        app.add_typer(sub, name=name, help=help_text)
    else:
        app.command(name=name, help=help_text)(sub)


def _placeholder(app: typer.Typer, name: str, help_text: str) -> None:
    # never runs: a command that is invoked is mounted for real instead
    @app.command(name=name, help=help_text, add_help_option=False)
    def _stub() -> None:  # pragma: no cover
        raise typer.Exit(1)


def build_app(argv: list[str]) -> typer.Typer:
    """The CLI for ``argv``: the invoked command mounted for real, the rest as help-only
    placeholders (so listing commands imports nothing heavy)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])
    app.callback()(_root)
    app.command()(demo)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (target, help_text) in SUBCOMMANDS.items():
        if name == wanted:
            _mount_one(app, name, target, help_text)
        else:
            _placeholder(app, name, help_text)
    return app


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
    app = build_app(sys.argv[1:])
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
        code = getattr(exc, "exit_code", None)
        if hasattr(exc, "show") and isinstance(code, int):
            exc.show()
            sys.exit(code)
        raise


if __name__ == "__main__":
    main()
