"""The ReaSeq `title` control arm: it exists, it encodes the bare titles only (no description,
no knowledge), and the study's claims read knowledge and text against it (Holm across them)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recfuse.data import load_dataset
from recfuse.errors import ConfigError
from recfuse.knowledge.agents import CostLog
from recfuse.knowledge.reaseq import (
    CriticVerdict,
    ItemKnowledge,
    KnowledgeRecord,
    KnowledgeRun,
    knowledge_texts,
)
from recfuse.runs.study import Cell, CellResult, Finished, Results
from recfuse.studies.reaseq import ARMS, ReaSeqStudy, title_texts, titles_of


def test_title_arm_exists_and_reads_only_titles() -> None:
    assert "title" in ARMS and ARMS.index("title") < ARMS.index("text")  # runs early: a control
    assert "title" in ReaSeqStudy.presets["smoke"]["arms"]
    data = load_dataset("ml-100k")
    bare = title_texts(data)
    assert bare == data.items["title"].astype(str).tolist()
    full = data.item_texts()
    # ml-100k's item text is "title. year. genres": the arm sees none of year and genres
    assert all(b != f and f.startswith(b) for b, f in zip(bare, full, strict=True))
    # it does not depend on the knowledge records: know differs only where a record is kept
    record = KnowledgeRecord(category="Comedy", attributes=["Czech", "cellist"])
    kept = ItemKnowledge(0, "notes", {}, None, CriticVerdict(record))
    run = KnowledgeRun("ml-100k", data.n_items, {0: kept}, CostLog(None))
    know = knowledge_texts(run, titles_of(data))
    assert know[0] != bare[0] and "cellist" in know[0] and "cellist" not in bare[0]
    assert know[1:] == bare[1:]  # items without a record render as the bare title in both


def test_title_arm_refuses_a_dataset_without_titles() -> None:
    import dataclasses

    full = load_dataset("ml-100k")
    data = dataclasses.replace(full, items=full.items.drop(columns=["title"]))
    with pytest.raises(ConfigError, match="title"):
        title_texts(data)


def test_title_arm_fuses_id_with_the_title_features() -> None:
    import torch

    from recfuse.models.item_encoders import FusionEncoder, standardize
    from recfuse.studies.reaseq import DatasetState, ReaSeqConfig, make_model

    rng = np.random.default_rng(0)
    n = 12
    feats = {k: rng.normal(size=(n, 6)).astype(np.float32) for k in ("text", "know", "title")}
    state = DatasetState(
        None, None, feats["text"], feats["know"], feats["title"],  # type: ignore[arg-type]
        feats["text"], None, np.zeros(n, bool), 0, {},  # type: ignore[arg-type]
    )  # fmt: skip
    model = make_model("title", state, ReaSeqConfig(datasets=["toy"]), None)
    split = type("S", (), {"n_items": n})()
    encoder = model.encoder_factory(split, 8)  # type: ignore[arg-type]
    assert isinstance(encoder, FusionEncoder) and encoder.mode == "gate"  # the `know` path
    assert torch.allclose(encoder.features, standardize(torch.as_tensor(feats["title"])))


def _cells(arm: str, gain_covered: float, seed_count: int = 3) -> list[Finished]:
    """Per-user rows of one arm: 200 users, the first 60 with a covered target."""
    out = []
    for seed in range(seed_count):
        rng = np.random.default_rng(100 * seed + len(arm))
        n = 200
        covered = (np.arange(n) < 60).astype(float)
        ndcg = 0.1 + 0.01 * rng.normal(size=n) + gain_covered * covered
        per_user = pd.DataFrame({
            "user": np.arange(n), "n_history": 10, "target_tail": 0.0, "cold": 0.0,
            "covered": covered, "NDCG@10": ndcg, "Recall@10": ndcg, "Recall@20": ndcg,
            "Recall@20 +interest": ndcg, "Recall@20 +history": ndcg,
        })  # fmt: skip
        out.append(Finished(Cell(arm, seed, "toy"), f"{arm}{seed}", CellResult({}, per_user)))
    return out


def test_verdicts_read_knowledge_and_text_against_the_title_arm() -> None:
    from recfuse.evaluation.significance import holm
    from recfuse.studies.reaseq import sliced
    from recfuse.studies.reaseq_report import (
        TITLE_CLAIMS,
        tests_section,
        title_comparisons,
        verdicts_for,
    )

    arms = ["id", "know", "title", "text"]
    # knowledge adds 0.05 on covered targets over the title; text equals the title; id lower
    results = Results(
        [*_cells("id", -0.05), *_cells("know", 0.05), *_cells("title", 0.0), *_cells("text", 0.0)]
    )
    _, comps = tests_section(results, "toy", arms)
    verdicts = {v.claim: v for v in verdicts_for(results, "toy", arms, comps)}
    know_title = "toy: knowledge beyond the title (know > title)"
    covered = "toy: knowledge beyond the title where a record exists (know > title, covered)"
    text_title = "toy: item text beyond the title (text > title)"
    assert {know_title, covered, text_title} <= set(verdicts)
    assert verdicts[covered].status == "holds"
    assert verdicts[text_title].status == "does not hold"
    assert "know vs title" in verdicts[know_title].evidence
    # one pre-specified family, Holm-adjusted across its three tests
    raw = [sliced(results, s).compare("toy", a, r, "NDCG@10").test.t_pvalue
           for s, a, r, _ in TITLE_CLAIMS]  # fmt: skip
    assert [c.p for _, c in title_comparisons(results, "toy", arms)] == pytest.approx(holm(raw))
    # without the title arm the claims are absent, not guessed
    no_title = Results([f for f in results.cells if f.cell.arm_name != "title"])
    _, comps = tests_section(no_title, "toy", ["id", "know", "text"])
    claims = {v.claim for v in verdicts_for(no_title, "toy", ["id", "know", "text"], comps)}
    assert not any("title" in c for c in claims)
    # without the id arm there is nothing to test against: no section, not an empty heading
    lines, comps = tests_section(results, "toy", ["know", "title", "text"])
    assert lines == [] and comps == {}


def test_title_control_runs_without_interests() -> None:
    # `interests: false` skips the beyond-log stage (14 min of LLM time on ml-100k): the title
    # claims do not read it, the +int arms do and are refused, and no interest channel is built.
    from recfuse.studies.reaseq import DatasetState, ReaSeqConfig, channels, no_interests
    from recfuse.studies.reaseq_report import has_column

    off = dict(datasets=["toy"], interests=False)
    study = ReaSeqStudy()
    cells = study.cells(ReaSeqConfig(**off, arms=["id", "know", "title"]), Results([]))
    assert {c.arm_name for c in cells} == {"id", "know", "title"}
    with pytest.raises(ConfigError, match=r"id\+int.*interests=true"):
        study.cells(ReaSeqConfig(**off, arms=["id", "id+int"]), Results([]))
    items = np.eye(4, dtype=np.float32)
    state = DatasetState(
        None, None, items, items, items, items, no_interests(3),  # type: ignore[arg-type]
        np.zeros(4, bool), 0, {"interest_hash": "off"},
    )  # fmt: skip
    assert list(channels(state)) == ["+history"]
    rows = _cells("id", 0.0)
    for f in rows:
        assert f.result.per_user is not None
        f.result.metrics.update({"Recall@20 +history": 0.1})
    assert not has_column(Results(rows), "toy", "Recall@20 +interest")
    rows[0].result.metrics["Recall@20 +interest"] = 0.1
    assert not has_column(Results(rows), "toy", "Recall@20 +interest")  # one cell lacks it
    for f in rows:
        f.result.metrics["Recall@20 +interest"] = 0.1
    assert has_column(Results(rows), "toy", "Recall@20 +interest")
