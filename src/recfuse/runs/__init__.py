"""Runs: validated configs, the one-call `Experiment`, and reproducible run folders."""

from recfuse.runs.config import RunConfig, load_config
from recfuse.runs.experiment import Experiment, build_model, run_config
from recfuse.runs.folder import RunFolder, metrics_markdown, package_versions

__all__ = [
    "Experiment",
    "RunConfig",
    "RunFolder",
    "build_model",
    "load_config",
    "metrics_markdown",
    "package_versions",
    "run_config",
]
