"""Selective LLM guidance: leakage guard, gate behaviour, oracle vs always-on, cached reruns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from recfuse.data import load_dataset
from recfuse.data.subsample import sample_users, subsample
from recfuse.errors import ConfigError, LeakageError
from recfuse.evaluation.validation import fit_validated
from recfuse.guidance import (
    GuidedBPR,
    LLMTeacher,
    MiniLMTeacher,
    build_pairs,
    check_pairs,
    fit_gate,
    gate_features,
    holdout_split,
    pair_accuracy,
    teacher_from_name,
)
from recfuse.guidance.guided import Guidance, GuidedSASRec, _steps_per_epoch
from recfuse.guidance.pairs import PairSet
from recfuse.guidance.teachers import PAIRWISE_TEMPLATE
from recfuse.llm.backend_spec import BackendSpec
from recfuse.llm.cache import LLMCache
from recfuse.models.training import TrainConfig
from recfuse.split import Split, make_split

SENTINEL = "SENTINEL-HELD-OUT"


@pytest.fixture(scope="module")
def small() -> tuple[Split, list[str]]:
    """ml-100k, 120 random users, leave-one-out."""
    ds = load_dataset("ml-100k")
    ds = subsample(ds, sample_users(ds, 120, seed=1))
    return make_split(ds, "leave_one_out"), ds.item_texts()


def _poisoned(split: Split, texts: list[str]) -> tuple[Split, list[str]]:
    """Every valid/test interaction moved to a brand-new item whose title is a sentinel: any
    validation or test information that reached a prompt would show the sentinel."""
    n = split.n_items
    valid, test = split.valid.copy(), split.test.copy()
    valid["item"] = n + np.arange(len(valid))
    test["item"] = n + len(valid) + np.arange(len(test))
    extra = len(valid) + len(test)
    new = Split(split.protocol, 0, split.n_users, n + extra, split.train, valid, test)
    return new, texts + [f"{SENTINEL} {k}" for k in range(extra)]


def test_no_valid_or_test_item_reaches_a_prompt_or_a_gate_label(small):
    split, texts = _poisoned(*small)
    holdout = holdout_split(split)
    backbone = fit_validated(
        GuidedBPR(dim=16, epochs=2, batch_size=4096, lr=5e-3, progress=False), holdout
    )
    pairs = build_pairs(holdout, backbone, n_hard=3, n_pop=2, top_k=50)
    check_pairs(pairs, split)  # the guard passes on honest pairs
    assert len(pairs.pairs) > 4 * holdout.valid["user"].nunique()
    records = LLMTeacher(BackendSpec(), history_items=10).records(pairs, texts)
    prompts = [PAIRWISE_TEMPLATE.build(r.fields)[1]["content"] for r in records]
    assert not any(SENTINEL in p for p in prompts)
    # gate labels: p > 0.5 on these pairs; every pair item is a training-period item
    items = np.concatenate([pairs.pairs["pos"], pairs.pairs["neg"]])
    assert items.max() < small[0].n_items
    # and the pos of each pair is the last *training* item, never a valid/test one
    last_train = split.train.groupby("user")["item"].last()
    assert (pairs.pairs["pos"].to_numpy() == last_train[pairs.pairs["user"]].to_numpy()).all()


def test_the_guard_refuses_a_pair_from_the_test_period(small, tmp_path: Path):
    split, _ = small
    holdout = holdout_split(split)
    pairs = build_pairs(holdout, None, n_hard=0, n_pop=2)
    bad = pairs.pairs.copy()
    first_user = int(bad["user"].iloc[0])
    test_item = int(split.test.loc[split.test["user"] == first_user, "item"].iloc[0])
    bad.loc[bad.index[0], "pos"] = test_item
    with pytest.raises(LeakageError):
        check_pairs(PairSet(holdout, bad), split)
    # a prompt history that carries a held-out (non-prefix) item is refused by LLMJob's guard
    records = LLMTeacher(BackendSpec()).records(pairs, [str(i) for i in range(split.n_items)])
    from recfuse.llm.job import LLMJob
    from recfuse.llm.sources import PromptRecord

    leaked = PromptRecord("x", records[0].fields, ((first_user, test_item),))
    with pytest.raises(LeakageError):
        LLMJob(
            "leak",
            [leaked],
            PAIRWISE_TEMPLATE,
            BackendSpec(),
            task="score",
            options=("A", "B"),
            cache=tmp_path / "leak.sqlite",
            split=holdout,
        )


def test_a_teacher_right_exactly_on_cold_users_gives_a_gate_open_on_cold_users():
    rng = np.random.default_rng(0)
    n_users, per_user = 400, 5
    users = np.repeat(np.arange(n_users), per_user)
    hist = np.repeat(rng.integers(2, 200, n_users), per_user)
    cold = hist <= np.quantile(hist, 0.2)
    p = np.where(cold, 0.8, 0.2) + rng.normal(0, 0.05, len(users))  # right iff cold
    x = gate_features(
        hist,
        rng.integers(1, 500, len(users)),
        rng.integers(1, 500, len(users)),
        rng.normal(5, 1, len(users)),
        rng.normal(0, 1, len(users)),
        np.clip(p, 0.01, 0.99),
    )
    fit = fit_gate(x, (p > 0.5).astype(int), users, "logistic")
    assert fit.g[cold].mean() > 0.8 and fit.g[~cold].mean() < 0.2
    assert (fit.g[cold] > 0.5).mean() > 0.9 and (fit.g[~cold] < 0.5).mean() > 0.9


def test_the_oracle_arm_is_never_worse_than_always_on_on_the_pairs():
    ds = load_dataset("ml-100k")  # the full catalogue: its MiniLM vectors are extracted once
    split = make_split(ds, "leave_one_out")
    holdout = holdout_split(split)
    pairs = build_pairs(holdout, None, n_hard=0, n_pop=3)
    out = MiniLMTeacher().preferences(pairs, ds.item_texts(), "ml-100k")
    right = (out.p > 0.5).astype(float)
    assert 0.05 < right.mean() < 0.95  # the teacher is wrong on some pairs
    accs = {}
    t = pairs.pairs
    cols = [t[c].to_numpy() for c in ("user", "pos", "neg")]
    for name, g in {"always": np.ones(len(t)), "oracle": right}.items():
        m = GuidedBPR(dim=16, epochs=4, patience=4, batch_size=8192, lr=1e-2, progress=False)
        m.guidance = Guidance(*cols, out.p, g, 5.0, pairs.prefixes())
        fit_validated(m, split)
        accs[name] = pair_accuracy(m, *cols, pairs.prefixes())
    assert accs["oracle"] >= accs["always"], accs


class FakeBiasedLLM:
    """A scripted pairwise LLM for control flow only: prefers the first slot by ``bias`` and
    the candidate whose title is shorter; counts its calls."""

    backend, model_id = "fake", "fake-biased-1"

    def __init__(self, bias: float = 1.0) -> None:
        self.bias, self.calls = bias, 0

    def score(self, prompt: Sequence[dict[str, str]], options: Sequence[str]) -> np.ndarray:
        self.calls += 1
        text = prompt[-1]["content"]
        a = text.split("Candidate A:")[1].split("Candidate B:")[0]
        b = text.split("Candidate B:")[1].split("Which candidate")[0]
        return np.array([self.bias - 0.01 * len(a), -0.01 * len(b)])

    def generate(self, *args, **kwargs):  # pragma: no cover - not used by a score job
        raise NotImplementedError

    def hidden_states(self, *args, **kwargs):  # pragma: no cover
        raise NotImplementedError


def test_orders_cancel_position_bias_and_a_rerun_makes_no_new_call(small, tmp_path: Path):
    split, texts = small
    pairs = build_pairs(holdout_split(split), None, n_hard=0, n_pop=1)
    pairs = PairSet(pairs.holdout, pairs.pairs.head(20).reset_index(drop=True))
    llm = FakeBiasedLLM(bias=1.0)
    teacher = LLMTeacher(llm, cache=LLMCache(tmp_path / "c.sqlite"))
    first = teacher.preferences(pairs, texts)
    assert llm.calls == 40 and first.cost["new_calls"] == 40
    assert first.position_bias() > 0.1  # the fake prefers slot A, and it is measured
    unbiased = LLMTeacher(FakeBiasedLLM(0.0), cache=LLMCache(tmp_path / "d.sqlite"))
    np.testing.assert_allclose(first.p, unbiased.preferences(pairs, texts).p, atol=1e-9)
    again = teacher.preferences(pairs, texts)
    assert llm.calls == 40 and again.cost["new_calls"] == 0 and again.cost["cache_hit_rate"] == 1.0
    np.testing.assert_array_equal(first.p, again.p)


def test_smollm2_teacher_reruns_from_the_cache(small, tmp_path: Path):
    split, texts = small
    pairs = build_pairs(holdout_split(split), None, n_hard=0, n_pop=1)
    pairs = PairSet(pairs.holdout, pairs.pairs.head(2).reset_index(drop=True))
    spec = BackendSpec(kind="transformers", model="smollm2", threads=1)
    first = LLMTeacher(spec, history_items=3, cache=LLMCache(tmp_path / "s.sqlite")).preferences(
        pairs, texts
    )
    assert first.cost["new_calls"] == 4 and np.all((first.p > 0) & (first.p < 1))
    again = LLMTeacher(spec, history_items=3, cache=LLMCache(tmp_path / "s.sqlite")).preferences(
        pairs, texts
    )
    assert again.cost["new_calls"] == 0 and again.cost["cache_hits"] == 4
    np.testing.assert_array_equal(first.p, again.p)
    assert isinstance(first.p_orders, np.ndarray) and first.p_orders.shape == (2, 2)


def test_the_study_resumes_without_recomputing_a_cell(tmp_path: Path):
    from recfuse.runs.study import load_study_config, run_study
    from recfuse.studies.guidance import GuidanceStudy

    sets = [
        "backbone=bpr",
        "train.epochs=1",
        "train.batch_size=4096",
        "train.lr=0.005",
        "arms=[none,selective,oracle]",
        "lambdas=[1.0]",
        "seeds=[0]",
        "max_users=80",
        f"folder={tmp_path / 'study'}",
    ]
    summary = run_study(GuidanceStudy(), load_study_config(GuidanceStudy, overrides=sets), False)
    assert "Teacher on ml-100k" in summary.markdown and "Gate on ml-100k" in summary.markdown
    again = run_study(GuidanceStudy(), load_study_config(GuidanceStudy, overrides=sets), False)
    log = (tmp_path / "study" / "log.txt").read_text()
    assert log.count(" started") == 3  # three cells ran once; the rerun read them back
    tail = "### Test metrics"  # the cells' tables; the teacher line adds the rerun's cost
    assert again.markdown.split(tail)[1] == summary.markdown.split(tail)[1]
    assert "rerun: {" in again.markdown and "'calls': 0" in again.markdown
    runs = (tmp_path / "study" / "teacher_runs.jsonl").read_text().splitlines()
    assert len(runs) == 2


def test_teacher_names_pick_the_backend_and_precision():
    # The default SmolLM2 teacher is float32: int8 flips most close A/B choices (docs/llm.md).
    assert teacher_from_name("smollm2").backend.compute_type == "float32"
    assert teacher_from_name("smollm2:int8").backend.compute_type == "int8"
    assert teacher_from_name("transformers").backend.kind == "transformers"
    http = teacher_from_name("http://127.0.0.1:9/v1#m").backend
    assert (http.kind, http.base_url, http.model) == ("http", "http://127.0.0.1:9/v1", "m")
    with pytest.raises(ConfigError, match="--teacher 'smollm3'"):
        teacher_from_name("smollm3")


@pytest.mark.parametrize("windows", ["last", "sliding"])
def test_one_guidance_pass_per_epoch_counts_the_backbones_own_batches(small, windows):
    split, _ = small
    model = GuidedSASRec(dim=8, max_len=10, windows=windows, train=TrainConfig(batch_size=16))
    ran = sum(1 for _ in model.batches(split, np.random.default_rng(0)))
    assert _steps_per_epoch(model, split) == ran
    if windows == "sliding":  # long ml-100k histories give many windows per user
        assert ran > -(-split.n_users // 16)
