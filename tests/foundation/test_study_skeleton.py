"""The Study skeleton: resume by content, budgets that recompute, the 3-seed rule, Holm, workers."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recfuse.errors import ConfigError
from recfuse.evaluation.significance import holm, paired_arrays
from recfuse.runs.study import (
    Cell,
    CellContext,
    CellResult,
    Results,
    Study,
    StudyConfig,
    StudyFolder,
    Summary,
    default_folder,
    load_study_config,
    run_study,
    verdict,
)

CALLS: list[str] = []


class CountConfig(StudyConfig):
    arms: list[str] = ["base", "better"]
    gain: float = 0.05
    kill_at: str | None = None  # cell label at which the process kills itself (kill -9)
    sleep: float = 0.0  # seconds each cell takes

    EXECUTION_FIELDS = StudyConfig.EXECUTION_FIELDS | {"kill_at", "sleep"}


class CountStudy(Study[CountConfig]):
    """Per-user "metrics" drawn from a seeded RNG: the arm ``better`` adds ``gain``."""

    name = "count"
    config_type = CountConfig
    presets = {"quick": {"seeds": [0], "train": {"epochs": 2}}}

    def cells(self, config: CountConfig, done: Results) -> list[Cell]:
        return [Cell(a, s, d) for d in config.datasets for a in config.arms for s in config.seeds]

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        if ctx.config.kill_at == cell.label():  # type: ignore[attr-defined]
            import os

            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(ctx.config.sleep)  # type: ignore[attr-defined]
        CALLS.append(cell.label())
        rng = np.random.default_rng(cell.seed)
        values = rng.uniform(0, 0.3, 200)
        if cell.arm_name == "better":
            values = values + ctx.config.gain  # type: ignore[attr-defined]
        frame = pd.DataFrame({"user": np.arange(200), "NDCG@10": values})
        info = {"epochs": ctx.config.train.epochs, "device": ctx.device}
        return CellResult({"NDCG@10": float(values.mean())}, frame, info)

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        cmp = results.compare(results.cells[0].cell.dataset, "better", "base", "NDCG@10")
        return Summary(results.markdown(["NDCG@10"]), [verdict("better > base", cmp)])


def _config(tmp_path: Path, **overrides: Any) -> CountConfig:
    sets = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    return load_study_config(CountStudy, overrides=[f"output={tmp_path}", *sets])


def test_rerun_reuses_cells_and_execution_fields_do_not_recompute(tmp_path: Path) -> None:
    CALLS.clear()
    run_study(CountStudy(), _config(tmp_path), progress=False)
    assert len(CALLS) == 6
    run_study(CountStudy(), _config(tmp_path, workers=2, threads=1), progress=False)
    assert len(CALLS) == 6  # workers/threads change how, not what: nothing recomputed


def test_changed_budget_recomputes_every_cell(tmp_path: Path) -> None:
    CALLS.clear()
    config = _config(tmp_path, folder=str(tmp_path / "one"))
    run_study(CountStudy(), config, progress=False)
    changed = _config(tmp_path, folder=str(tmp_path / "one"), train={"epochs": 7})
    run_study(CountStudy(), changed, progress=False)
    assert len(CALLS) == 12  # the same folder, a new budget: every cell ran again
    cells = json.loads((tmp_path / "one" / "results.json").read_text())["cells"]
    assert {c["epochs"] for c in cells} == {7}  # the report shows the budget that ran


def test_resume_after_kill_runs_only_the_missing_cells(tmp_path: Path) -> None:
    folder = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_study_skeleton import CountStudy, CALLS
        from recfuse.runs.study import load_study_config, run_study
        kill = sys.argv[1] if len(sys.argv) > 1 else None
        sets = ["folder={folder}"] + ([f"kill_at={{kill}}"] if kill else [])
        run_study(CountStudy(), load_study_config(CountStudy, overrides=sets), progress=False)
        print("ran", len(CALLS))
        """
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, "ml-100k/better/seed1"], capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL
    assert len(list((folder / "cells").glob("*.json"))) == 4  # base 0-2, better 0
    resumed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "ran 2" in resumed.stdout
    assert (folder / "results.md").exists()


def test_sigint_with_workers_stops_without_running_the_queued_cells(tmp_path: Path) -> None:
    """Ctrl-C (or `timeout -s INT`) reaches the whole process group: the two running cells are
    interrupted and the queued ones must not start (they used to, until the queue was empty)."""
    folder = tmp_path / "interrupted"
    script = textwrap.dedent(
        f"""
        import signal, sys
        # a test runner (pytest-xdist) may start us with SIGINT ignored; a terminal would not
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_study_skeleton import CountStudy
        from recfuse.runs.study import load_study_config, run_study
        sets = ["folder={folder}", "workers=2", "sleep=3"]
        run_study(CountStudy(), load_study_config(CountStudy, overrides=sets), progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    cells = folder / "cells"
    deadline = time.monotonic() + 120
    while len(list(cells.glob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the second pair of cells is running now
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert len(list(cells.glob("*.json"))) == 2  # 6 cells: 2 done, 2 interrupted, 2 never run


def test_workers_receive_the_device_and_write_every_cell(tmp_path: Path) -> None:
    config = _config(tmp_path, workers=2, train={"device": "cuda:7"})
    run_study(CountStudy(), config, progress=False)
    cells = json.loads((default_folder(CountStudy(), config) / "results.json").read_text())
    assert len(cells["cells"]) == 6
    assert {c["device"] for c in cells["cells"]} == {"cuda:7"}


def test_verdict_needs_three_seeds_and_the_claimed_direction(tmp_path: Path) -> None:
    one = run_study(CountStudy(), _config(tmp_path, seeds=[0]), progress=False)
    assert one.verdicts[0].status == "not tested: 1 seed(s)"
    three = run_study(CountStudy(), _config(tmp_path), progress=False)
    assert three.verdicts[0].status == "holds"
    worse = run_study(CountStudy(), _config(tmp_path, gain=-0.05), progress=False)
    assert worse.verdicts[0].status == "does not hold"
    tiny = run_study(CountStudy(), _config(tmp_path, gain=1e-9), progress=False)
    assert tiny.verdicts[0].status == "does not hold"


def test_summary_table_is_mean_and_std_over_seeds(tmp_path: Path) -> None:
    config = _config(tmp_path)
    run_study(CountStudy(), config, progress=False)
    text = (default_folder(CountStudy(), config) / "results.md").read_text()
    means = [np.random.default_rng(s).uniform(0, 0.3, 200).mean() for s in (0, 1, 2)]
    assert f"{np.mean(means):.4f} ± {np.std(means, ddof=1):.4f}" in text


def test_holm_matches_hand_computation() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_paired_arrays_degenerate_inputs() -> None:
    same = np.array([0.1, 0.2, 0.3])
    assert paired_arrays(same, same).t_pvalue == 1.0
    assert paired_arrays(same[:1], same[:1] + 1).t_pvalue == 1.0  # one pair says nothing
    assert paired_arrays(same + 0.1, same).t_pvalue == 0.0  # constant non-zero shift


def test_presets_and_unknown_keys(tmp_path: Path) -> None:
    config = load_study_config(CountStudy, preset="quick")
    assert config.seeds == [0] and config.train.epochs == 2
    assert config.train.lr == 1e-3  # the preset merges into the training section
    with pytest.raises(ConfigError, match="train.epochz"):
        load_study_config(CountStudy, overrides=["train.epochz=3"])
    with pytest.raises(ConfigError, match="unknown preset"):
        load_study_config(CountStudy, preset="nope")
    with pytest.raises(ConfigError, match="workers"):
        load_study_config(CountStudy, overrides=["workers=0"])


# ----------------------------------------------------------------------------- staged, typed


@dataclasses.dataclass(frozen=True)
class Dose:
    """A typed arm: its name is derived, its fields are part of the cell's key."""

    level: int

    @property
    def name(self) -> str:
        return f"dose{self.level}"


STAGED: list[str] = []


class StagedStudy(Study[CountConfig]):
    """Stage 2 (dose 3) runs only after stage 1 (doses 1, 2) finished: a later stage that
    depends on an earlier one, like DFF's best layer by validation."""

    name = "staged"
    config_type = CountConfig

    def __init__(self) -> None:
        self.prepared: np.ndarray | None = None

    def prepare(self, config: CountConfig, folder: StudyFolder) -> None:
        self.prepared = np.arange(5)  # workers must inherit this, not a pickled copy

    def cells(self, config: CountConfig, done: Results) -> list[Cell]:
        first = [Cell(Dose(1), s, "d") for s in config.seeds] + [
            Cell(Dose(2), s, "d") for s in config.seeds
        ]
        if len(done.get("d", "dose1")) == len(config.seeds) == len(done.get("d", "dose2")):
            first += [Cell(Dose(3), s, "d") for s in config.seeds]
        return first

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        assert self.prepared is not None and isinstance(cell.arm, Dose)
        STAGED.append(cell.label())
        values = np.full(10, cell.arm.level * 0.1) + np.random.default_rng(cell.seed).normal(
            0, 0.01, 10
        )
        frame = pd.DataFrame({"user": np.arange(10), "m": values})
        return CellResult({"m": float(values.mean())}, frame, {"pid": os.getpid()})

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        cmps = results.compare_pairs("d", [("dose3", "dose1"), ("dose2", "dose1")], "m")
        return Summary(
            results.markdown(["m"]), [verdict(f"{c.arm}>{c.reference}", c) for c in cmps]
        )


def test_a_later_stage_is_unlocked_on_resume_and_typed_arms_survive(tmp_path: Path) -> None:
    STAGED.clear()
    config = _config(tmp_path, folder=str(tmp_path / "s"), workers=2)
    first = run_study(StagedStudy(), config, progress=False)
    cells = json.loads((tmp_path / "s" / "results.json").read_text())["cells"]
    assert sorted({c["arm"] for c in cells}) == ["dose1", "dose2", "dose3"]
    assert len({c["pid"] for c in cells}) >= 2  # forked workers ran them
    stored = json.loads(next((tmp_path / "s" / "cells").glob("*.json")).read_text())
    assert set(stored["cell"]["arm"]) == {"name", "level"}  # typed arm: fields and name
    # a rerun in this process: stage 1 read back unlocks stage 2, read back too; nothing reruns
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "s" / "cells").iterdir()}
    again = run_study(StagedStudy(), _config(tmp_path, folder=str(tmp_path / "s")), progress=False)
    assert STAGED == []  # workers=1 now: a recomputed cell would have been recorded here
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "s" / "cells").iterdir()} == stamps
    assert (
        [v.status for v in again.verdicts]
        == [v.status for v in first.verdicts]
        == [
            "holds",
            "holds",
        ]
    )
    assert "dose3" in (tmp_path / "s" / "results.md").read_text()


def test_compare_pairs_holm_adjusts_across_the_pairs(tmp_path: Path) -> None:
    config = _config(tmp_path, folder=str(tmp_path / "p"))
    run_study(StagedStudy(), config, progress=False)
    results = Results(
        [
            f
            for f in [
                StudyFolder(tmp_path / "p").read(p.stem)
                for p in (tmp_path / "p" / "cells").glob("*.json")
            ]
            if f is not None
        ]
    )
    raw = [
        results.compare("d", a, b, "m").test.t_pvalue
        for a, b in [("dose3", "dose2"), ("dose2", "dose1")]
    ]
    pairs = results.compare_pairs("d", [("dose3", "dose2"), ("dose2", "dose1")], "m")
    assert [c.p for c in pairs] == pytest.approx(holm(raw))
