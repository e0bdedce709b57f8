"""Runs: validated configs, the one-call `Experiment`, and reproducible run folders."""

from recfuse.runs.config import RunConfig, load_config
from recfuse.runs.experiment import Experiment, build_model, run_config
from recfuse.runs.folder import RunFolder, metrics_markdown, package_versions
from recfuse.runs.load import load_run

__all__ = [
    "Experiment",
    "RunConfig",
    "RunFolder",
    "build_model",
    "load_config",
    "load_run",
    "metrics_markdown",
    "package_versions",
    "run_config",
]
