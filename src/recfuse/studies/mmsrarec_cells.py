"""The cells of the MMSRARec study: SASRec with ID / raw-text / keyword features, and the
keyword LM without / with collaborative keywords."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recfuse.runs.study import Cell, CellContext, CellResult
from recfuse.studies.mmsrarec import S100, MMSRARecConfig, Prepared, sampled_metrics

FULL = ("Recall@10", "NDCG@10", "Recall@20", "NDCG@20")


def run_sasrec(cell: Cell, ctx: CellContext, state: Prepared) -> CellResult:
    """SASRec (full CE) with an ID table or a gated fusion of MiniLM vectors of raw text or
    keywords; full-ranking test metrics over all users plus sampled-100 on the LM's sample."""
    from recfuse.evaluation import Evaluator, fit_validated
    from recfuse.models import SASRec
    from recfuse.models.item_encoders import FusionEncoder, IdEncoder, ItemEncoder

    content = {"sasrec-text": state.text_vectors, "sasrec-kw": state.keyword_vectors}

    def encoder(split: Any, dim: int) -> ItemEncoder:
        if cell.arm_name == "sasrec-id":
            return IdEncoder(split.n_items, dim)
        return FusionEncoder(content[cell.arm_name], dim, mode="gate")

    train = ctx.train_config(cell.seed, progress=False)
    model = SASRec(dim=64, loss="ce", encoder=encoder, train=train)
    fit_validated(model, state.split)
    result = Evaluator(state.split, ks=(10, 20)).evaluate(model, "test")
    metrics = {k: result.metrics[k] for k in FULL}
    histories = state.split.histories("test")
    scores = model.score(state.users, [histories[u] for u in state.users])
    picked = np.take_along_axis(np.asarray(scores), state.candidates, axis=1)
    sampled = sampled_metrics(state.users, picked)
    metrics.update({c: float(sampled[c].mean()) for c in sampled.columns if c != "user"})
    per_user = result.per_user[["user", "NDCG@10", "Recall@10"]].merge(sampled, "left", "user")
    info = {
        "epochs_run": len(model.history_), "train_seconds": model.train_seconds_,
        "valid NDCG@10": model.best_valid_, "test users": int(result.metrics["users"]),
    }  # fmt: skip
    return CellResult(metrics, per_user, info)


def run_lm(cell: Cell, ctx: CellContext, state: Prepared) -> CellResult:
    """The keyword LM: SFT on training histories, then sampled-100 (log-probability of each
    candidate's keywords) and full ranking by retrieval with generated keywords, both on the
    fixed user sample."""
    import time

    import torch

    from recfuse.evaluation import Evaluator
    from recfuse.generative.keyword_lm import KeywordLM, KeywordLMConfig, KeywordRetriever
    from recfuse.generative.lora import LoRAConfig
    from recfuse.knowledge.keywords_context import CollaborativeKeywords

    config: MMSRARecConfig = ctx.config  # type: ignore[assignment]
    torch.set_num_threads(config.threads)
    lora = LoRAConfig(lr=config.lm_lr, epochs=1, batch_size=config.lm_batch, seed=cell.seed)
    lm_cfg = KeywordLMConfig(
        n_examples=config.lm_examples, recon_fraction=config.lm_recon_fraction, lora=lora
    )
    context = (
        CollaborativeKeywords(state.split, state.keywords)
        if cell.arm_name == "lm-kw-collab"
        else None
    )
    lm = KeywordLM(state.keywords, state.texts, lm_cfg, context).fit(state.split)
    histories = state.split.histories("test")
    started = time.perf_counter()
    scores = lm.candidate_scores([histories[u] for u in state.users], state.candidates)
    sampled_seconds = time.perf_counter() - started
    sampled = sampled_metrics(state.users, scores)
    retriever = KeywordRetriever(lm, state.keyword_vectors).fit(state.split)
    result = Evaluator(state.split, ks=(10, 20), users=state.users).evaluate(retriever, "test")
    metrics = {k: result.metrics[k] for k in FULL}
    metrics.update({c: float(sampled[c].mean()) for c in sampled.columns if c != "user"})
    per_user = result.per_user[["user", "NDCG@10", "Recall@10"]].merge(sampled, "left", "user")
    losses = lora.losses
    info = {
        "sft examples": lm.n_examples_, "steps": len(losses), "train_seconds": lm.train_seconds_,
        "loss first 10": float(np.mean(losses[:10])), "loss last 10": float(np.mean(losses[-10:])),
        "sampled seconds": sampled_seconds, "retrieval seconds": result.seconds,
        "test users": len(state.users), "generated (first 5)": retriever.generated_[:5],
    }  # fmt: skip
    return CellResult(metrics, per_user, info)


def s100_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(S100)]
