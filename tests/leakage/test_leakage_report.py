"""Verdict logic and confidence intervals."""

from __future__ import annotations

import math

import pytest

from recfuse.audit.report import mean_ci, verdict


def _summary(**means: float) -> dict[str, dict[str, float]]:
    return {f"derived.{k}": {"mean": v, "lo": v, "hi": v, "n": 5} for k, v in means.items()}


def test_mean_ci_matches_t_interval() -> None:
    ci = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert ci["mean"] == 3.0
    # t(0.975, 4) = 2.776; sd = 1.5811; half = 2.776 * 1.5811 / sqrt(5)
    assert ci["hi"] - ci["mean"] == pytest.approx(2.7764 * 1.58114 / math.sqrt(5), rel=1e-3)
    assert mean_ci([float("nan"), 1.0])["n"] == 1


def test_clever_hans_verdict() -> None:
    v = verdict(
        _summary(
            explained_share=0.9,
            identity_share=0.85,
            relative_split_gap=0.95,
            control_margin_top5=-0.01,
        )
    )
    assert v["level"] == "severe"
    assert v["recommended_split"] == "group_disjoint"
    assert v["control_passed"]


def test_content_not_identity_verdict() -> None:
    # the group-only model is strong, but keeps its skill on unseen groups and so does the baseline
    v = verdict(
        _summary(
            explained_share=0.9,
            identity_share=0.03,
            relative_split_gap=0.02,
            control_margin_top5=0.0,
        )
    )
    assert v["level"] == "weak"
    assert v["recommended_split"] == "random"
    assert any("content" in n for n in v["notes"])


def test_split_gap_alone_recommends_group_split_and_failed_control_is_flagged() -> None:
    v = verdict(
        _summary(
            explained_share=0.1,
            identity_share=0.05,
            relative_split_gap=0.4,
            control_margin_top5=0.2,
        )
    )
    assert v["level"] == "weak"
    assert v["recommended_split"] == "group_disjoint"
    assert not v["control_passed"]
    assert any("NOT fall to chance" in n for n in v["notes"])
