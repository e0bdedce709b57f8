"""Fixtures for the toolkit tests: ml-100k, its leave-one-out split and one EASE run folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from recfuse.data import Dataset, load_dataset
from recfuse.runs import load_config, run_config
from recfuse.split import Split, make_split


@pytest.fixture(scope="session")
def ml100k() -> Dataset:
    return load_dataset("ml-100k")


@pytest.fixture(scope="session")
def ml100k_split(ml100k: Dataset) -> Split:
    return make_split(ml100k, "leave_one_out")


def make_run(root: Path, name: str, *overrides: str) -> Path:
    """`recfuse run` of a config given as overrides, into ``root``."""
    config = load_config(None, [f"output={root}", f"name={name}", *overrides])
    return run_config(config)


@pytest.fixture(scope="session")
def run_maker() -> object:
    return make_run


@pytest.fixture(scope="session")
def ease_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    return make_run(root, "ease", "data.name=ml-100k", "model.name=ease", "eval.ks=[10]")
