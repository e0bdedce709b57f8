"""`make demo`: the resolved demo config, the arms it trains, and its one-screen summary."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from recfuse.demo import demo_config, demo_summary
from recfuse.runs.study import Cell, CellResult, Finished, Results, StudyFolder
from recfuse.studies.dff.arms import Arm
from recfuse.studies.dff.features import sweep_layers
from recfuse.studies.dff.study import DFFConfig, DFFStudy

DS = "amazon-scientific"
N_LAYERS = 7  # MiniLM: the embedding output and 6 blocks


def _study(config: DFFConfig) -> DFFStudy:
    """A DFFStudy whose `prepare` is replaced by the two facts the cell plan reads."""
    study = DFFStudy(echo=lambda _: None, echo_report=False)
    study.config = config
    feats = SimpleNamespace(n_layers=N_LAYERS, captions=None, caption_note="captions not cached")
    study.prepared = {
        DS: SimpleNamespace(  # type: ignore[dict-item]
            sweep=sweep_layers(N_LAYERS, config.sweep_stride),
            feats=feats,
            users_note="all 100 users",
            items_note="50 items",
        )  # fmt: skip
    }
    return study


def _finished(arm: Arm, seed: int, offset: float, rng: np.random.Generator) -> Finished:
    """A finished cell whose 200 users' NDCG@10 sits ``offset`` above a shared base."""
    users = np.arange(200)
    base = np.linspace(0.02, 0.08, len(users))  # the same users are hard for every arm
    ndcg = np.clip(base + offset + rng.normal(0, 0.002, len(users)), 0, 1)
    per_user = pd.DataFrame({"user": users, "NDCG@10": ndcg, "Recall@10": ndcg * 1.5})
    metrics = {"NDCG@10": float(ndcg.mean()), "Recall@10": float(ndcg.mean() * 1.5),
               "valid NDCG@10": float(ndcg.mean() + 0.001)}  # fmt: skip
    info = {"has_id_table": arm.kind != "replace", "train_seconds": 30.0, "epochs": 20 + seed,
            "report": {"layer_weights": {"layer0": 0.4, "layer6": 0.6}}}  # fmt: skip
    return Finished(Cell(arm, seed, DS), f"{arm.name}-{seed}", CellResult(metrics, per_user, info))


#: per arm, how far above the base its users score (fusion > replace, layer 6 best, DFF best)
OFFSETS = {"id": 0.0, "fusion-L0": 0.010, "fusion-L6": 0.020, "replace-L6": 0.015, "dff": 0.025}


def _results(study: DFFStudy, config: DFFConfig, arms: list[Arm]) -> Results:
    rng = np.random.default_rng(0)
    done = [_finished(a, s, OFFSETS[a.name], rng) for a in arms for s in config.seeds]
    return Results(done)


def test_demo_config_has_no_time_cap_three_seeds_and_early_stopping() -> None:
    config = demo_config()
    assert config.train.max_seconds is None
    assert config.seeds == [0, 1, 2]
    assert config.train.patience is not None and config.train.epochs > config.train.patience
    assert config.datasets == [DS] and config.max_users is None  # every user
    assert (config.workers, config.threads) == (2, 1)
    assert config.model == "minilm" and config.backbone == "sasrec"


def test_demo_trains_id_fusion_replacement_and_multi_layer_dff() -> None:
    config = demo_config()
    study = _study(config)
    first = study.cells(config, Results([]))
    assert {c.arm.name for c in first} == {"id", "fusion-L0", "fusion-L6"}
    done = _results(study, config, list({c.arm for c in first}))
    every = study.cells(config, done)
    arms = {c.arm.name: c.arm for c in every}
    # fusion-L6 wins on validation, so replacement runs at layer 6 (= last) only
    assert set(arms) == {"id", "fusion-L0", "fusion-L6", "replace-L6", "dff"}
    assert arms["dff"].layers == (0, 6)  # DFF mixes several layers
    assert all(sorted(c.seed for c in every if c.arm.name == a) == [0, 1, 2] for a in arms)


def test_demo_summary_prints_table_verdicts_and_paths(tmp_path: Path) -> None:
    config = demo_config()
    study = _study(config)
    arms = [Arm("id"), Arm.on_layer("fusion", 0), Arm.on_layer("fusion", 6),
            Arm.on_layer("replace", 6), Arm("dff", "layers", layers=(0, 6))]  # fmt: skip
    folder = StudyFolder(tmp_path / "study")
    folder.path.mkdir()
    summary = study.summarize(_results(study, config, arms), folder)
    text = demo_summary(summary, folder.path, 754.0)
    statuses = {v.claim: v.status for v in summary.verdicts}
    # the made-up offsets decide every verdict: fusion > replacement, layer 6 > 0, DFF best
    assert all(status == "holds" for status in statuses.values()), statuses
    for claim, status in statuses.items():
        assert f"[{status}] {claim}" in text
    assert "P1 (hidden states beat captions): not tested — captions not cached" in text
    assert "fusion-L6 (fusion-best)" in text and "replace-L6 (replace-best)" in text
    assert f"report: {folder.path / 'results.md'}" in text
    assert f"plot:   {folder.path / f'layer_sweep_{DS}.png'}" in text
    assert "wall time: 754 s (12.6 min)" in text
    assert len(text.splitlines()) <= 40  # one screen
