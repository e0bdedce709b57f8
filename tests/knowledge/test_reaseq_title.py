"""The ReaSeq `title` control arm: it exists, it encodes the bare titles only (no description,
no knowledge), and the study's claims read knowledge and text against it (Holm across them)."""

from __future__ import annotations

from pathlib import Path

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


def test_interest_claims_are_measured_on_the_users_with_interests() -> None:
    from recfuse.knowledge.reaseq_interests import InterestSet
    from recfuse.studies.reaseq import interest_users
    from recfuse.studies.reaseq_report import tests_section, verdicts_for

    # an interest_users budget of 3 of 5 users: the others have no sample and a zero vector
    partial = InterestSet([["a"], [], ["b", "c"], ["d"], []], np.zeros((5, 2), np.float32))
    assert interest_users(partial).tolist() == [0, 2, 3]  # type: ignore[union-attr]
    assert interest_users(InterestSet([["a"], ["b"]], np.zeros((2, 2), np.float32))) is None

    # id+int gains 0.05 on the first 60 users (those with interests), nothing on the other 140
    # and the interest channel, merged into id's list, gains 0.05 there too
    cells = []
    for f in [*_cells("id", 0.0), *_cells("id+int", 0.05)]:
        pu = f.result.per_user.copy()  # type: ignore[union-attr]
        pu["Recall@20 +interest"] += 0.05 * (pu["user"] < 60)
        metrics = {"Recall@20 +interest": 0.0}
        cells.append(Finished(f.cell, f.key, CellResult(metrics, pu)))
    results = Results(cells)
    arms = ["id", "id+int"]
    _, comps = tests_section(results, "toy", arms)
    reached = np.arange(60)
    claims = {v.claim: v for v in verdicts_for(results, "toy", arms, comps, reached)}
    user_input = claims[
        "toy: interests as user input help (id+int > id, the 60 users with interests)"
    ]
    assert "60 users" in user_input.evidence and "200 users" not in user_input.evidence
    channel = claims[
        "toy: the interest channel adds recall (Recall@20, the 60 users with interests)"
    ]
    assert "60 users" in channel.evidence
    # without a budget the same claims read every user
    everyone = {v.claim: v for v in verdicts_for(results, "toy", arms, comps)}
    assert "200 users" in everyone["toy: interests as user input help (id+int > id)"].evidence


def test_channel_table_reads_both_channels_on_the_same_users() -> None:
    from recfuse.evaluation import Evaluator
    from recfuse.knowledge.reaseq_model import VectorChannel
    from recfuse.split import make_split
    from recfuse.studies.reaseq import channel_table

    split = make_split(load_dataset("ml-100k"), "leave_one_out")
    rng = np.random.default_rng(0)
    items = rng.normal(size=(split.n_items, 8)).astype(np.float32)
    interests = np.zeros((split.n_users, 8), np.float32)
    reached = np.arange(0, split.n_users, 3)
    interests[reached] = rng.normal(size=(len(reached), 8))
    rows = {r["channel"]: r for r in channel_table(split, items, interests, reached)}
    history = VectorChannel(items, None, history_mean=True)
    on_reached = Evaluator(split, ks=(10, 20, 50), users=reached).evaluate(history, "test")  # type: ignore[arg-type]
    on_all = Evaluator(split, ks=(10, 20, 50)).evaluate(history, "test")  # type: ignore[arg-type]
    assert rows["history mean (content)"]["Recall@50"] == on_reached.metrics["Recall@50"]
    assert on_reached.metrics["Recall@50"] != on_all.metrics["Recall@50"]


def test_arms_that_read_no_knowledge_skip_the_agents_and_the_text_features(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # arms=[id,id+int] reads neither the records nor the item text: the knowledge agents (17
    # min of LLM time on amazon-scientific) and the MiniLM text features must not run
    import recfuse.features.embed as embed_module
    import recfuse.features.extract as extract_module
    from recfuse.runs.study import StudyFolder
    from recfuse.studies.reaseq import KNOWLEDGE_SKIPPED, ReaSeqConfig, item_features
    from recfuse.studies.reaseq_report import quality_section, tests_section

    assert item_features(["id", "id+int"]) == set()
    assert item_features(["both+int", "title"]) == {"text", "know", "title"}
    assert item_features(["know-only", "text"]) == {"know", "text"}

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a stage no arm reads was run")

    monkeypatch.setattr(ReaSeqStudy, "_knowledge", refuse)
    monkeypatch.setattr(extract_module, "extract_features", refuse)
    monkeypatch.setattr(
        embed_module, "embed", lambda texts: np.eye(len(texts), 4, dtype=np.float32)
    )
    config = ReaSeqConfig(datasets=["ml-100k"], arms=["id"], interests=False)
    folder = StudyFolder(tmp_path)
    state = ReaSeqStudy()._prepare_one("ml-100k", config, folder)
    assert state.info["knowledge_hash"] == KNOWLEDGE_SKIPPED and not state.covered.any()
    assert "not extracted" in "\n".join(quality_section("ml-100k", state.info))

    # the covered slice is then empty for every cell: said, not tested on zero users
    cells = []
    for f in [*_cells("id", 0.0), *_cells("id+int", 0.0)]:
        pu = f.result.per_user.copy()  # type: ignore[union-attr]
        pu["covered"] = 0.0
        cells.append(Finished(f.cell, f.key, CellResult({}, pu)))
    lines, comps = tests_section(Results(cells), "toy", ["id", "id+int"])
    assert "- [covered] no users in this slice" in lines and "covered|id+int" not in comps
    assert "all|id+int" in comps
    # and the results table leaves out the column no cell measured
    from recfuse.studies.reaseq_report import report

    for f in cells:
        f.result.metrics.update({"NDCG@10": 0.1, "NDCG@10 covered": float("nan")})
    table = report(ReaSeqStudy(), Results(cells), folder).markdown
    assert "| NDCG@10 |" in table and "NDCG@10 covered" not in table
