"""`eval compare` refuses runs of other data, splits or protocols; `eval show` shows everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recfuse.errors import RecfuseError
from recfuse.evaluation.run_results import compare_runs, show_run
from recfuse.evaluation.significance import holm

POP = ("model.name=pop", "eval.ks=[10]")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, run_maker: Any) -> dict[str, Path]:
    make_run = run_maker
    root = tmp_path_factory.mktemp("compare")
    return {
        "pop": make_run(root, "pop", "data.name=ml-100k", *POP),
        "knn": make_run(root, "knn", "data.name=ml-100k", "model.name=itemknn", "eval.ks=[10]"),
        "other_data": make_run(root, "core", "data.name=ml-100k", "data.k_core=20", *POP),
        "other_split": make_run(root, "ratio", "data.name=ml-100k", "split.protocol=ratio", *POP),
        "sampled": make_run(
            root, "sampled", "data.name=ml-100k", "eval.sampled_negatives=100", *POP
        ),
    }


def test_compare_refuses_other_datasets(runs: dict[str, Path], ease_run: Path) -> None:
    # issue 14: users of unrelated runs were paired by integer index (p=0.047 across datasets)
    with pytest.raises(RecfuseError, match="different datasets"):
        compare_runs([str(ease_run), str(runs["other_data"])], None, ["NDCG@10"])


def test_compare_refuses_other_splits_and_protocols(runs: dict[str, Path]) -> None:
    with pytest.raises(RecfuseError, match="different splits"):
        compare_runs([str(runs["pop"]), str(runs["other_split"])], None, ["NDCG@10"])
    with pytest.raises(RecfuseError, match=r"different protocols \(full vs sampled-100\)"):
        compare_runs([str(runs["pop"]), str(runs["sampled"])], None, ["NDCG@10"])


def test_compare_many_runs_names_models_and_applies_holm(
    runs: dict[str, Path], ease_run: Path
) -> None:
    text = compare_runs([str(runs["pop"]), str(ease_run), str(runs["knn"])], None, ["NDCG@10"])
    assert "baseline: Pop" in text and "protocol full" in text
    lines = [line for line in text.splitlines() if "Holm " in line and "vs" in line]
    assert len(lines) == 2 and "EASE" in lines[0] and "ItemKNN" in lines[1]


def test_holm_is_step_down_monotone_and_capped() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_show_gives_every_k_and_metric(ease_run: Path) -> None:
    text = show_run(ease_run)
    assert "| EASE | full | 943 | NDCG |" in text and "| MRR |" in text
    assert "## slices: EASE (test)" in text and "## valid" in text
