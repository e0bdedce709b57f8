"""End to end on synthetic tables: a planted Clever Hans is caught, honest content is not."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import recfuse.audit.audit as audit_module
from recfuse.audit.audit import AuditConfig, run_audit
from recfuse.audit.learner import NetConfig
from recfuse.audit.report import build_report, write_report
from recfuse.audit.table import AuditTable

torch.set_num_threads(1)
FAST = AuditConfig(seeds=(0,), n_folds=3, target_net=NetConfig(hidden=64, epochs=25, patience=4))


def synthetic_table(planted: bool, seed: int = 0) -> AuditTable:
    """60 groups × 15 items with 512-bit sparse features.

    planted: each group has signature bits and its own target offset; the target depends on
    nothing else, so all skill comes from recognizing the group.
    not planted: groups leave no trace in the features; the target is a linear function of
    the item's own bits.
    """
    rng = np.random.default_rng(seed)
    n_groups, per_group, n_bits = 60, 15, 512
    groups = np.repeat(np.arange(n_groups), per_group)
    signature = rng.integers(0, n_bits, size=(n_groups, 10))
    weights = rng.normal(size=n_bits)
    offset = rng.normal(scale=2.0, size=n_groups)
    rows, cols = [], []
    for i, g in enumerate(groups):
        own = rng.integers(0, n_bits, size=12)
        bits = np.unique(np.concatenate([signature[g], own]) if planted else own)
        rows += [i] * len(bits)
        cols += bits.tolist()
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(groups), n_bits))
    noise = rng.normal(scale=0.3, size=len(groups))
    y = offset[groups] + noise if planted else np.asarray(x @ weights).ravel() + noise
    return AuditTable(
        name="planted" if planted else "content",
        groups=[f"g{g}" for g in groups],
        target=y,
        task="regression",
        feature_kind="precomputed",
        matrix=x,
        columns={"group": "g", "target": "y", "context": None},
    )


@pytest.mark.parametrize("planted", [True, False])
def test_audit_catches_planted_clever_hans_only(planted: bool, tmp_path) -> None:
    table = synthetic_table(planted)
    records = run_audit(table, FAST, tmp_path, progress=False)
    markdown, payload = build_report(table, records, FAST.to_json())
    splits = records[0]["splits"]
    v = payload["verdict"]
    assert v["control_passed"]
    if planted:
        assert splits["random"]["who_made_it"]["top1"] > 0.8
        assert splits["random"]["baseline"]["r2"] > 0.6
        assert splits["group_disjoint"]["baseline"]["r2"] < 0.2  # unseen groups: no skill
        assert v["explained_share"] > 0.8
        assert v["level"] in ("strong", "severe")
        assert v["recommended_split"] == "group_disjoint"
    else:
        assert (
            splits["random"]["who_made_it"]["top5"]
            < 3 * splits["random"]["who_made_it"]["chance_top5"] + 0.05
        )
        assert splits["group_disjoint"]["baseline"]["r2"] > 0.5  # content transfers
        assert v["level"] == "weak"
        assert v["recommended_split"] == "random"
    write_report(tmp_path, markdown, payload)
    assert "## Verdict" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.json").stat().st_size > 0


def test_run_audit_resumes_finished_seeds(tmp_path, monkeypatch) -> None:
    table = synthetic_table(True)
    config = AuditConfig(seeds=(0,), n_folds=2, target_net=NetConfig(hidden=16, epochs=2))
    first = run_audit(table, config, tmp_path, progress=False)
    assert (tmp_path / "seeds" / "seed_0.json").is_file()
    with np.load(tmp_path / "splits" / "seed_0.npz") as saved:
        assert set(saved.files) == {"random", "group_disjoint", "similarity"}
        assert len(saved["random"]) == table.n_rows

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished seed was recomputed")

    monkeypatch.setattr(audit_module, "audit_seed", must_not_run)
    again = run_audit(table, config, tmp_path, progress=False)
    assert again[0]["splits"]["random"]["baseline"] == pytest.approx(
        first[0]["splits"]["random"]["baseline"]
    )
    changed = AuditConfig(seeds=(0,), n_folds=3, target_net=NetConfig(hidden=16, epochs=2))
    with pytest.raises(AssertionError, match="recomputed"):  # a different config is not reused
        run_audit(table, changed, tmp_path, progress=False)
    smaller = AuditTable(
        name=table.name,
        groups=table.groups[:600],
        target=table.target[:600],
        task="regression",
        feature_kind="precomputed",
        matrix=table.matrix[:600],
    )
    with pytest.raises(AssertionError, match="recomputed"):  # nor another subsample
        run_audit(smaller, config, tmp_path, progress=False)
