"""`recfuse study reaseq`: does LLM-distilled item knowledge, and beyond-log interests, help SASRec?

Offline stages (`prepare`, once per dataset, resumable through the LLM cache):

1. **knowledge** — analyst -> extractor -> critic over the catalogue (`recfuse.knowledge.reaseq`),
   in chunks (``knowledge_max_chunks`` bounds one run), rendered and encoded by MiniLM (all layers
   into the FeatureStore under ``<dataset>-knowledge``). Items without a kept record render as
   their title. Quality (schema-valid rate, critic removals, faithfulness, coverage) goes to the
   summary; every record to ``knowledge-<dataset>.json`` in the study folder.
2. **interests** — ``interest_samples`` sampled continuations per user from the training period
   only, pooled into one vector (`recfuse.knowledge.reaseq_interests.SampledLatent`).

Every agent call passes the governance gate (`GovernedLLM`, one actor per agent) and is written
to ``ledger.db`` in the study folder.

Cells (arm × seed): SASRec with item encoder ``id``; fusion of ID with MiniLM item ``text``,
``know`` (the rendered records), ``title`` (the bare titles: the control for ``know``, whose
items without a kept record render as exactly that title) or ``both`` (text and knowledge
vectors concatenated); the replacement arms ``text-only`` / ``know-only``; and ``<arm>+int`` — the same with the user's
interest vector added to the final user state (`InterestSASRec`). Each cell also measures the
interest channel as an extra retrieval channel: SASRec's top 15 plus the channel's top 5 vs
SASRec's top 20 (Recall@20), and the same with a history-mean content channel as a control.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from recfuse.data.dataset import Dataset
from recfuse.data.subsample import load_sample
from recfuse.errors import ConfigError
from recfuse.evaluation import Evaluator
from recfuse.evaluation.validation import fit_validated
from recfuse.knowledge.agents import CostLog
from recfuse.knowledge.reaseq import (
    KnowledgeRun,
    encode_knowledge,
    extract_knowledge,
    knowledge_texts,
    quality,
    render,
    save_run,
)
from recfuse.knowledge.reaseq_interests import InterestSet, SampledLatent
from recfuse.knowledge.reaseq_model import InterestSASRec, VectorChannel, merged_hits
from recfuse.models.item_encoders import FusionEncoder, IdEncoder, ReplacementEncoder
from recfuse.models.sequential import SASRec
from recfuse.runs.study import (
    Cell,
    CellContext,
    CellResult,
    Finished,
    Results,
    Study,
    StudyConfig,
    StudyFolder,
    Summary,
    fingerprint,
)
from recfuse.split import Split, make_split

# in priority order: cells run in this order, so a bounded job that stops early loses the last
# (``title`` right after ``know``: it is the control every knowledge claim is read against)
ARMS = ("id", "know", "title", "text", "both", "id+int", "know+int", "text-only", "know-only",
        "text+int", "both+int")  # fmt: skip
TEXT_LAYER = 6  # MiniLM's last layer, mean pooling: the sentence-embedding recipe
NOUNS = {"ml-100k": "movie", "microlens-50k": "video", "amazon-scientific": "product",
         "amazon-office": "product"}  # fmt: skip


class ReaSeqConfig(StudyConfig):
    """The ReaSeq study's config (defaults ← preset ← YAML ← ``--set``)."""

    EXECUTION_FIELDS: ClassVar[frozenset[str]] = StudyConfig.EXECUTION_FIELDS | {
        "stage", "knowledge_max_chunks", "llm_threads", "llm_batch",
        "arms",  # which cells to run; each cell's own arm is in its key
    }  # fmt: skip

    arms: list[str] = Field(default_factory=lambda: list(ARMS))
    stage: Literal["all", "knowledge", "interests"] = "all"
    llm: str = Field("smollm2", description="smollm2 or http://host:port/v1#model")
    llm_threads: int | None = Field(None, ge=1)
    llm_batch: int = Field(32, ge=1, le=256)
    analyst_tokens: int = Field(48, ge=8, le=256)
    extractor_tokens: int = Field(80, ge=16, le=256)
    critic_min_similarity: float = Field(0.15, ge=-1, le=1)
    knowledge_chunk: int = Field(128, ge=1)
    knowledge_max_chunks: int | None = Field(None, ge=0)
    knowledge_limit: int | None = Field(None, ge=1, description="only the first N items")
    interests: bool = Field(
        True, description="infer beyond-log interests (the +int arms and the interest channel)"
    )
    interest_samples: int = Field(3, ge=1, le=16)
    interest_tokens: int = Field(24, ge=4, le=128)
    interest_history: int = Field(10, ge=1, le=50)
    interest_users: int | None = Field(None, ge=1, description="only the first N users")
    item_noun: str | None = Field(None, pattern=r"^[a-z ]{1,20}$", description="default by dataset")
    max_users: int | None = Field(None, ge=10, description="random user sample (MicroLens)")
    dim: int = 64
    max_len: int = 50
    channel_k: int = Field(20, ge=2)
    channel_m: int = Field(5, ge=1)
    cold_quantile: float = Field(0.2, gt=0, lt=1)


@dataclass
class DatasetState:
    dataset: Dataset
    split: Split
    text: np.ndarray  # [n_items, 384] MiniLM item-text features (layer 6, mean)
    knowledge: np.ndarray  # [n_items, 384] MiniLM features of the rendered records
    title: np.ndarray  # [n_items, 384] MiniLM features of the bare titles (`title_texts`)
    channel_items: np.ndarray  # [n_items, 384] normalised item vectors for the channels
    interests: InterestSet
    covered: np.ndarray  # [n_items] bool: the item has a kept knowledge record
    cold_max: int
    info: dict[str, Any]


def build_llm(name: str, threads: int | None) -> Any:
    """The agents' LLM: SmolLM2 (CTranslate2 int8 where installed) or an OpenAI-compatible URL."""
    from recfuse.llm import BackendSpec, fast_llm
    from recfuse.llm.backend_spec import job_threads

    if name == "smollm2":
        return fast_llm(threads=threads or job_threads())
    if name.startswith(("http://", "https://")):
        base, _, model = name.partition("#")
        return BackendSpec(kind="http", base_url=base, model=model or "default").build()
    raise ConfigError(f"llm: {name!r} is not smollm2 or http://host:port/v1#model")


def governed(llm: Any, folder: StudyFolder, actor: str) -> Any:
    """``llm`` behind the policy gate; every call is an entry of the folder's ledger."""
    from recfuse.governance.governor import Governor
    from recfuse.governance.ledger import Ledger
    from recfuse.governance.llm_gate import LLM_POLICY_DIR, GovernedLLM
    from recfuse.governance.policy import Policies

    ledger = Ledger(folder.path / "ledger.db")
    return GovernedLLM(llm, Governor(ledger, Policies.from_dir(LLM_POLICY_DIR), actor=actor))


def minilm_similarity(values: list[str], texts: list[str]) -> np.ndarray:
    """Cosine of MiniLM sentence vectors, value by value (the critic's topicality check)."""
    from recfuse.features.embed import embed

    return np.sum(embed(values) * embed(texts), axis=1)


def titles_of(dataset: Dataset) -> list[str]:
    if "title" in dataset.items.columns:
        return dataset.items["title"].fillna("").astype(str).tolist()
    return dataset.item_texts()


def title_texts(dataset: Dataset) -> list[str]:
    """The ``title`` arm's texts, one per item: the item rendered with no knowledge record, i.e.
    its bare title — the string the ``know`` arm encodes for every item without a kept record,
    so ``know`` and ``title`` differ only on the items that have one. No description, no other
    field, nothing the agents wrote; a dataset without a title column has no title arm."""
    if "title" not in dataset.items.columns:
        raise ConfigError(f"arm title: dataset {dataset.name!r} has no title column")
    return [render(None, t) for t in titles_of(dataset)]


def item_features(arms: list[str]) -> set[str]:
    """The item-side features ``arms`` read (``both`` reads text and know): the study computes
    only these, so ``arms=[id,id+int]`` runs no knowledge agent and no text extraction."""
    bases = {arm_base(a) for a in arms}
    return (bases - {"id", "both"}) | ({"text", "know"} if "both" in bases else set())


def arm_base(arm: str) -> str:
    """The item-side feature an arm reads: ``know+int`` -> ``know``, ``text-only`` -> ``text``."""
    return arm.partition("+")[0].removesuffix("-only")


class ReaSeqStudy(Study[ReaSeqConfig]):
    name, config_type, version = "reaseq", ReaSeqConfig, 1
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "seeds": [0], "arms": ["id", "know", "title", "id+int"], "knowledge_limit": 8,
            "interest_users": 16, "train": {"epochs": 2, "patience": 1, "progress": False},
            "analyst_tokens": 32, "extractor_tokens": 64, "interest_tokens": 16,
        },
        "fast": {"train": {"epochs": 40, "patience": 3, "progress": False}},
        "full": {"train": {"epochs": 100, "patience": 5, "progress": False}},
    }  # fmt: skip

    def __init__(self) -> None:
        self.state: dict[str, DatasetState] = {}

    # -------------------------------------------------------------- offline stages

    def prepare(self, config: ReaSeqConfig, folder: StudyFolder) -> None:
        for name in config.datasets:
            self.state[name] = self._prepare_one(name, config, folder)

    def _prepare_one(self, name: str, config: ReaSeqConfig, folder: StudyFolder) -> DatasetState:
        from recfuse.features.embed import embed
        from recfuse.features.extract import extract_features

        dataset = load_sample(name, config.max_users)
        split = make_split(dataset, "leave_one_out")
        texts, titles = dataset.item_texts(), titles_of(dataset)
        info: dict[str, Any] = {}
        read = item_features(config.arms)
        zeros = np.zeros((dataset.n_items, 1), dtype=np.float32)  # a feature no arm reads
        know, covered = zeros, np.zeros(dataset.n_items, dtype=bool)
        if "know" in read or config.stage != "all":
            run = self._knowledge(name, texts, config, folder, info)
            if config.stage == "knowledge":
                return self._partial(dataset, split, info)
            rendered = knowledge_texts(run, titles)
            know = encode_knowledge(name, rendered).load(TEXT_LAYER, "mean")
            covered[[i for i, k in run.items.items() if k.record is not None]] = True
            info["knowledge_hash"] = fingerprint(rendered)
        else:
            info["knowledge_hash"] = KNOWLEDGE_SKIPPED
        title = zeros
        if "title" in read:
            # the same encoder path as `know` (an empty record set renders as the titles)
            bare = title_texts(dataset)
            title = encode_knowledge(name, bare).load(TEXT_LAYER, "mean")
            info["title_hash"] = fingerprint(bare)
        text = zeros
        if "text" in read:
            text = extract_features(texts, "minilm", name, progress=False).load(TEXT_LAYER, "mean")
        channel_items = embed(texts)
        if config.interests:
            interests = self._interests(name, split, titles, config, folder, info)
            reached = interest_users(interests)
            info["channels"] = channel_table(split, channel_items, interests.vectors, reached)
            info["channel_users"] = split.n_users if reached is None else len(reached)
            info["interest_hash"] = fingerprint(interests.vectors)
        else:
            interests = no_interests(split.n_users)
            info["interest_hash"] = INTERESTS_OFF
        lengths = np.array([len(h) for h in split.histories("test")])
        users = np.unique(split.test["user"].to_numpy())
        cold_max = int(np.quantile(lengths[users], config.cold_quantile))
        return DatasetState(
            dataset, split, text, know, title, channel_items, interests, covered, cold_max, info
        )

    def _knowledge(
        self, name: str, texts: list[str], config: ReaSeqConfig, folder: StudyFolder,
        info: dict[str, Any],
    ) -> KnowledgeRun:  # fmt: skip
        llm = build_llm(config.llm, config.llm_threads)
        started = time.perf_counter()
        run = extract_knowledge(
            name, texts, governed(llm, folder, "reaseq-analyst"),
            governed(llm, folder, "reaseq-extractor"), chunk_items=config.knowledge_chunk,
            max_chunks=0 if config.stage == "interests" else config.knowledge_max_chunks,
            limit=config.knowledge_limit,
            order=np.random.default_rng(0).permutation(len(texts)).tolist(),
            cost_path=folder.path / "llm_runs.jsonl", analyst_tokens=config.analyst_tokens,
            extractor_tokens=config.extractor_tokens, batch_size=config.llm_batch,
            similarity=minilm_similarity,
        )  # fmt: skip
        save_run(run, folder.path / f"knowledge-{name}.json", texts)
        info["knowledge_quality"] = quality(run)
        info["knowledge_cost"] = cost_summary(run.costs.runs, time.perf_counter() - started)
        folder.log(f"{name}: knowledge {json.dumps(info['knowledge_quality'])}")
        return run

    def _interests(
        self, name: str, split: Split, titles: list[str], config: ReaSeqConfig,
        folder: StudyFolder, info: dict[str, Any],
    ) -> InterestSet:  # fmt: skip
        from recfuse.features.embed import embed

        started = time.perf_counter()
        sample = f"-sample{config.max_users}" if config.max_users else ""  # its own users
        reasoner = SampledLatent(
            governed(build_llm(config.llm, config.llm_threads), folder, "reaseq-interests"),
            embed, name=f"reaseq-interest-{name}{sample}", k=config.interest_samples,
            max_tokens=config.interest_tokens, history_items=config.interest_history,
            max_users=config.interest_users, batch_size=config.llm_batch,
            noun=config.item_noun or NOUNS.get(name, "item"),
            costs=CostLog(folder.path / "llm_runs.jsonl"),
        )  # fmt: skip
        interests = reasoner.infer(split, titles)
        info["interest_cost"] = cost_summary(interests.costs.runs, time.perf_counter() - started)
        info["interest_coverage"] = interests.coverage
        info["interest_examples"] = [
            {"user": u, "samples": interests.texts[u]} for u in range(min(5, split.n_users))
        ]
        return interests

    def _partial(self, dataset: Dataset, split: Split, info: dict[str, Any]) -> DatasetState:
        empty = np.zeros((dataset.n_items, 1), dtype=np.float32)
        none = no_interests(split.n_users)
        covered = np.zeros(dataset.n_items, dtype=bool)
        return DatasetState(dataset, split, empty, empty, empty, empty, none, covered, 0, info)

    def inputs(self, cell: Cell, config: ReaSeqConfig) -> dict[str, Any]:
        state = self.state.get(cell.dataset)
        if state is None:
            return {}
        # every cell keeps the knowledge hash: its per-user `covered` column reads the records,
        # so a run that skipped the knowledge stage has cells of its own
        keys = ["knowledge_hash", "interest_hash"]
        if arm_base(cell.arm_name) == "title":
            keys.append("title_hash")  # only title cells read it (the others' keys unchanged)
        return {k: state.info.get(k) for k in keys}

    # -------------------------------------------------------------- cells

    def cells(self, config: ReaSeqConfig, done: Results) -> list[Cell]:
        if config.stage != "all":
            return []
        unknown = sorted(set(config.arms) - set(ARMS))
        if unknown:
            raise ConfigError(f"arms: unknown {unknown} (known: {', '.join(ARMS)})")
        needing = [a for a in config.arms if a.endswith("+int")]
        if needing and not config.interests:
            raise ConfigError(
                f"arms: {needing} read the interests; set interests=true or drop them"
            )
        return [Cell(a, s, d) for d in config.datasets for a in config.arms for s in config.seeds]

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        config = ctx.config
        assert isinstance(config, ReaSeqConfig)
        state = self.state[cell.dataset]
        model = make_model(cell.arm_name, state, config, ctx.train_config(cell.seed))
        fit_validated(model, state.split)
        result = Evaluator(state.split, ks=(10, 20)).evaluate(model, "test")
        per_user = result.per_user[["user", "n_history", "target_tail", *METRIC_COLS]].copy()
        per_user["cold"] = (per_user["n_history"] <= state.cold_max).astype(float)
        target = state.split.test.groupby("user")["item"].first()
        per_user["covered"] = state.covered[target.loc[per_user["user"]].to_numpy()].astype(float)
        k, m = config.channel_k, config.channel_m
        for label, channel in channels(state).items():
            users, own, mixed = merged_hits(model, channel, state.split, k, m)
            frame = pd.DataFrame({"user": users, f"Recall@{k} {label}": mixed})
            per_user = per_user.merge(frame, on="user", how="left")
        metrics = slice_metrics(per_user)
        info = {
            "valid": float(model.best_valid_),
            "epochs": len(model.history_),
            "train_seconds": round(model.train_seconds_, 2),
        }
        return CellResult(metrics, per_user=per_user, info=info)

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        from recfuse.studies.reaseq_report import report

        return report(self, results, folder)


METRIC_COLS = ("NDCG@10", "Recall@10", "Recall@20")


INTERESTS_OFF = "off"  # the interest hash of a run with ``interests: false``
KNOWLEDGE_SKIPPED = "skipped"  # the knowledge hash of a run whose arms read no knowledge


def no_interests(n_users: int) -> InterestSet:
    """The stand-in when interests were not inferred (``interests: false``): no texts."""
    return InterestSet([], np.zeros((n_users, 1), dtype=np.float32))


def channels(state: DatasetState) -> dict[str, VectorChannel]:
    """The extra retrieval channels merged into each model's list: interests (when inferred),
    history mean."""
    out = {"+history": VectorChannel(state.channel_items, None, history_mean=True)}
    if state.info.get("interest_hash") != INTERESTS_OFF:
        out = {"+interest": VectorChannel(state.channel_items, state.interests.vectors), **out}
    return out


def masks(per_user: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row masks: all, cold (sparse) users, tail / head targets, targets with a kept record."""
    from recfuse.studies.guidance import slice_masks

    return {**slice_masks(per_user), "covered": per_user["covered"].to_numpy() > 0}


def sliced(results: Results, which: str) -> Results:
    """The same cells with per-user rows restricted to one slice (for paired tests)."""
    return _keep_rows(results, lambda pu: masks(pu)[which])


def among(results: Results, users: np.ndarray | None) -> Results:
    """The same cells with per-user rows restricted to ``users`` (all rows when None)."""
    if users is None:
        return results
    return _keep_rows(results, lambda pu: pu["user"].isin(users).to_numpy())


def _keep_rows(results: Results, rows: Callable[[pd.DataFrame], np.ndarray]) -> Results:
    out = []
    for f in results.cells:
        pu = f.result.per_user
        assert pu is not None
        keep = pu[rows(pu)]
        out.append(Finished(f.cell, f.key, CellResult(f.result.metrics, keep, f.result.info)))
    return Results(out)


def interest_users(interests: InterestSet) -> np.ndarray | None:
    """The users with at least one inferred interest, or None when that is every user (an
    ``interest_users`` budget leaves the rest with a zero vector: they say nothing about the
    interests, so the interest claims and the channel table are measured on these users)."""
    reached = np.flatnonzero([bool(t) for t in interests.texts])
    return None if len(reached) == len(interests.texts) else reached


def slice_metrics(per_user: pd.DataFrame) -> dict[str, float]:
    """Means of every metric column overall and on each slice of `masks`."""
    cols = [c for c in per_user.columns if c.startswith(("NDCG@", "Recall@"))]
    out: dict[str, float] = {}
    for s, mask in masks(per_user).items():
        for c in cols:
            name = c if s == "all" else f"{c} {s}"
            out[name] = float(per_user.loc[mask, c].mean()) if mask.any() else float("nan")
        out[f"users {s}"] = float(mask.sum())
    return out


def make_model(arm: str, state: DatasetState, config: ReaSeqConfig, train: Any) -> SASRec:
    """The SASRec of one arm: its item encoder, and the user-side interest input for ``+int``."""
    base, _, plus = arm.partition("+")
    feats = {
        "text": state.text,
        "know": state.knowledge,
        "title": state.title,
        "both": np.concatenate([state.text, state.knowledge], axis=1),
    }

    def encoder(split: Split, dim: int) -> Any:
        if base == "id":
            return IdEncoder(split.n_items, dim)
        if base.endswith("-only"):
            return ReplacementEncoder(feats[base.removesuffix("-only")], dim)
        return FusionEncoder(feats[base], dim, mode="gate")

    kwargs = {"dim": config.dim, "max_len": config.max_len, "encoder": encoder, "train": train}
    if plus == "int":
        return InterestSASRec(state.interests.vectors, **kwargs)
    return SASRec(**kwargs)


def channel_table(
    split: Split, items: np.ndarray, interests: np.ndarray, users: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """Each channel alone: full-ranking Recall/NDCG on the test stage, seen items masked, both
    on the same ``users`` (default: all)."""
    rows = []
    evaluator = Evaluator(split, ks=(10, 20, 50), users=users)
    for label, channel in {
        "interests (beyond-log)": VectorChannel(items, interests),
        "history mean (content)": VectorChannel(items, None, history_mean=True),
    }.items():
        res = evaluator.evaluate(channel, "test")  # type: ignore[arg-type]
        rows.append({"channel": label, **{k: res.metrics[k] for k in
                     ("Recall@10", "Recall@20", "Recall@50", "NDCG@10")}})  # fmt: skip
    return rows


def cost_summary(runs: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """LLM calls, tokens and seconds of this process's job runs, by agent step."""
    out: dict[str, Any] = {"wall_seconds": round(wall, 1)}
    for r in runs:
        step = out.setdefault(r["step"], {"calls": 0, "tokens": 0, "seconds": 0.0, "cached": 0})
        step["calls"] += int(r["completed"]) + int(r["failed"])
        step["tokens"] += int(r["completion_tokens"])
        step["seconds"] = round(step["seconds"] + float(r["wall_seconds"]), 2)
        step["cached"] += int(r["already_done"])
    return out


def keep_finished(results: Results, arm: str, column: str, as_arm: str) -> Results:
    """The cells of ``arm`` with ``column`` renamed to ``Recall@20``: a pseudo-arm for paired
    tests of a merged list against the arm's own list."""
    out = []
    for f in results.cells:
        if f.cell.arm_name != arm or f.result.per_user is None:
            continue
        pu = f.result.per_user.drop(columns=["Recall@20"]).rename(columns={column: "Recall@20"})
        cell = Cell(as_arm, f.cell.seed, f.cell.dataset)
        out.append(Finished(cell, f.key, CellResult(f.result.metrics, pu, f.result.info)))
    return Results([*results.cells, *out])


def main(
    dataset: str = "ml-100k",
    seeds: int = 3,
    preset: str | None = None,
    stage: str = "all",
    out: str = "runs",
    workers: int = 1,
    set: list[str] | None = None,  # noqa: A002 (the CLI option is --set)
) -> Path:
    """ReaSeq: knowledge records and beyond-log interests for SASRec, with quality checks."""
    from recfuse.runs.study import load_study_config, run_study

    study = ReaSeqStudy()
    config = load_study_config(
        study, preset=preset, overrides=list(set or []),
        options={"datasets": [dataset], "seeds": list(range(seeds)), "stage": stage,
                 "output": out, "workers": workers},
    )  # fmt: skip
    summary = run_study(study, config)
    print(summary.markdown)
    return Path(summary.data.get("folder", out))


__all__ = ["ARMS", "ReaSeqConfig", "ReaSeqStudy", "arm_base", "main", "title_texts"]
