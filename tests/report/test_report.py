"""`recfuse report`: a self-contained page for run and study folders, checked in a real browser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recfuse.errors import RecfuseError
from recfuse.report import build_report
from recfuse.runs import load_config, run_config
from recfuse.runs.study import (
    Cell,
    CellContext,
    CellResult,
    Results,
    Study,
    StudyConfig,
    StudyFolder,
    Summary,
    bar_plot,
    default_folder,
    load_study_config,
    run_study,
    verdict,
)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SASRec run on ml-100k, two epochs (a training curve, slices, every K)."""
    out = tmp_path_factory.mktemp("runs")
    config = load_config(
        overrides=[
            "name=tiny-sasrec",
            "data.name=ml-100k",
            "model.name=sasrec",
            "model.params={dim: 16, max_len: 20, blocks: 1}",
            "train={epochs: 2, batch_size: 256, patience: 5}",
            f"output={out}",
            "threads=1",
        ]
    )
    folder = run_config(config)
    cfg = (folder / "config.yaml").read_text()  # an untrusted name must be shown, not run
    (folder / "config.yaml").write_text(cfg.replace("tiny-sasrec", "<script>alert(1)</script>"))
    return folder


class BarConfig(StudyConfig):
    pass


class BarStudy(Study[BarConfig]):
    """Two arms with per-user numbers from a seeded RNG (a rendering fixture, not a result)."""

    name = "bars"
    config_type = BarConfig

    def cells(self, config: BarConfig, done: Results) -> list[Cell]:
        return [Cell(a, s, "ml-100k") for a in ("base", "plus") for s in config.seeds]

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        values = np.random.default_rng(cell.seed).uniform(0, 0.2, 100)
        values = values + (0.05 if cell.arm == "plus" else 0.0)
        frame = pd.DataFrame({"user": np.arange(100), "NDCG@10": values})
        return CellResult({"NDCG@10": float(values.mean())}, frame, {"epochs": 3})

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        plot = bar_plot(results.table(["NDCG@10"]), "NDCG@10", folder.path / "bars.png", "bars")
        cmp = results.compare("ml-100k", "plus", "base", "NDCG@10")
        return Summary(results.markdown(["NDCG@10"]), [verdict("plus > base", cmp)], [plot.name])


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = load_study_config(BarStudy, overrides=[f"output={tmp_path_factory.mktemp('s')}"])
    run_study(BarStudy(), config, progress=False)
    return default_folder(BarStudy(), config)


def test_run_report_has_every_k_slices_curves_and_escapes_text(run_folder: Path) -> None:
    page = build_report(run_folder).read_text()
    for heading in ("Metrics at every K (test)", "Slices (test)", "Training curves", "Config"):
        assert heading in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert page.count("data:image/png;base64,") == 1  # the training curve, embedded
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    metrics = json.loads((run_folder / "metrics.json").read_text())["SASRec"]["test"]
    assert f"{metrics['NDCG@5']:.4f}" in page and f"{metrics['NDCG@20']:.4f}" in page


def test_study_report_shows_verdicts_results_and_plots(study_folder: Path) -> None:
    page = build_report(study_folder).read_text()
    assert "plus &gt; base" in page and 'class="holds"' in page
    assert "mean ± std over seeds" in page
    assert page.count("data:image/png;base64,") == 1


def test_not_a_report_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecfuseError, match="not a run or study folder"):
        build_report(tmp_path)
    with pytest.raises(RecfuseError, match="not a folder"):
        build_report(tmp_path / "missing")


@pytest.mark.slow
def test_reports_render_in_a_real_browser(
    run_folder: Path, study_folder: Path, tmp_path: Path, open_in_browser: Any
) -> None:
    for folder, title in ((run_folder, "recfuse run"), (study_folder, "recfuse study: bars")):
        report = build_report(folder)
        info = open_in_browser(report.resolve().as_uri(), tmp_path / "shot.png")
        assert str(info["title"]).startswith(title)
        assert any("NDCG" in t for t in info["tables"])  # type: ignore[attr-defined]
        images = info["images"]
        assert images and all(w > 0 and h > 0 and done for w, h, done in images)  # type: ignore[attr-defined]
        assert info["errors"] == []
        assert (tmp_path / "shot.png").stat().st_size > 10_000
