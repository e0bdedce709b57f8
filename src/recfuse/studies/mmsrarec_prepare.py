"""`prepare` of the MMSRARec study: keyword candidates, rewards, best-of-n, one round of expert
iteration, the vectors of keywords and raw text, the LM's user sample and candidates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recfuse import atomic
from recfuse.knowledge.keywords import VARIANTS, Candidate, KeywordVariant, generate_candidates
from recfuse.knowledge.keywords_reward import (
    RewardWeights,
    best_of_n,
    distribution,
    score_candidates,
)
from recfuse.llm.backend_spec import BackendSpec
from recfuse.runs.study import StudyFolder, fingerprint
from recfuse.studies.mmsrarec import MMSRARecConfig, Prepared, sampled_candidates

N_EXAMPLES_SHOWN = 20


def variants_of(names: Sequence[str]) -> list[KeywordVariant]:
    from recfuse.errors import ConfigError

    known = {v.name: v for v in VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"variants: {', '.join(unknown)} not among {', '.join(known)}")
    return [known[n] for n in names]


def scored_round(
    tag: str,
    texts: Sequence[str],
    items: np.ndarray,
    backend: BackendSpec,
    variants: Sequence[KeywordVariant],
    item_vectors: np.ndarray,
) -> dict[str, Any]:
    """Candidates of ``items``, their reward components, best-of-n and the LLM cost."""
    cands, reports = generate_candidates(tag, texts, items, backend, variants=variants)
    scores = score_candidates(cands, item_vectors, RewardWeights())
    owners = np.array([c.item for c in cands])
    best = best_of_n(owners, scores["reward"])
    cost = {
        "prompts computed": sum(r.completed + r.failed for r in reports),
        "prompts cached": sum(r.already_done for r in reports),
        "completion tokens": sum(r.completion_tokens for r in reports),
        "wall seconds": sum(r.wall_seconds for r in reports),
    }
    cost["tokens/s"] = cost["completion tokens"] / max(cost["wall seconds"], 1e-9)
    return {"candidates": cands, "scores": scores, "best": best, "cost": cost}


def round_stats(rnd: dict[str, Any], items: np.ndarray) -> dict[str, Any]:
    """Reward distribution (all candidates and best-of-n), keyword length, reconstruction rank
    and validity of one round, over ``items``."""
    keep = set(int(i) for i in items)
    scores, cands = rnd["scores"], rnd["candidates"]
    rows = np.array([c.item in keep for c in cands])
    chosen = [i for item, i in rnd["best"].items() if item in keep]
    return {
        "items": len(keep),
        "valid answers": float(np.mean(np.isfinite(scores["reward"][rows]))),
        "extractive echoes": float(np.mean([c.status == "echo" for c in cands if c.item in keep])),
        "reward (all candidates)": distribution(scores["reward"][rows]),
        "reward (best-of-n)": distribution(scores["reward"][chosen]),
        "words (best-of-n)": distribution(scores["n_words"][chosen]),
        "recon rank (best-of-n)": distribution(scores["rank"][chosen]),
        "info loss (best-of-n)": distribution(scores["info_loss"][chosen]),
        "cost": rnd["cost"],
    }


def best_texts(rnd: dict[str, Any], n_items: int, texts: Sequence[str]) -> tuple[list[str], int]:
    """The best-of-n keyword text of every item; an item without a valid candidate (or outside
    ``item_limit``) falls back to its title (the text before the first '.'). Returns the
    texts and the number of fallbacks."""
    out, fallbacks = [], 0
    for item in range(n_items):
        idx = rnd["best"].get(item)
        kw = rnd["candidates"][idx].keywords if idx is not None else None
        if kw is None:
            fallbacks += 1
            out.append(texts[item].split(".")[0][:80])
        else:
            out.append(kw.text())
    return out, fallbacks


def prepare_dataset(ds: str, config: MMSRARecConfig, folder: StudyFolder) -> Prepared:
    from recfuse.data import load_dataset
    from recfuse.features.embed import embed
    from recfuse.split import make_split

    data = load_dataset(ds)
    texts = data.item_texts()
    split = make_split(data, "leave_one_out", 0)
    text_vectors = embed(texts, "minilm")
    n = split.n_items
    items = np.arange(n if config.item_limit is None else min(config.item_limit, n))
    variants = variants_of(config.variants)
    spec = BackendSpec(kind=config.backend, threads=config.llm_threads)  # type: ignore[arg-type]
    round0 = scored_round(f"mmsrarec-{ds}-r0", texts, items, spec, variants, text_vectors)
    folder.log(f"{ds}: round 0 keywords: {round0['cost']}")
    report: dict[str, Any] = {"round 0 (all items)": round_stats(round0, items)}
    if "policy" in config.stages:
        report.update(policy_round(ds, config, folder, texts, items, round0, text_vectors))
    keywords, fallbacks = best_texts(round0, n, texts)
    report["fallback items"] = fallbacks
    keyword_vectors = embed(keywords, "minilm")
    rng = np.random.default_rng(0)
    test_users = np.unique(split.test["user"].to_numpy())
    users = np.sort(rng.choice(test_users, min(config.lm_users, len(test_users)), replace=False))
    candidates = sampled_candidates(split, users, config.lm_negatives)
    _write_keywords(folder, ds, texts, round0, keywords)
    keys = {
        "split": fingerprint(split.train, split.valid, split.test),
        "keywords": fingerprint(keywords),
        "text": fingerprint(text_vectors),
        "candidates": fingerprint(candidates),
    }
    return Prepared(
        split, texts, keywords, text_vectors, keyword_vectors, users, candidates, report, keys
    )


def policy_round(
    ds: str,
    config: MMSRARecConfig,
    folder: StudyFolder,
    texts: list[str],
    items: np.ndarray,
    round0: dict[str, Any],
    item_vectors: np.ndarray,
) -> dict[str, Any]:
    """Expert iteration, round 1: train on items outside a held-out set, regenerate the held-out
    items with the fine-tuned policy, compare rewards per item (round 0 vs round 1)."""
    from transformers import AutoTokenizer

    from recfuse.frozen import locate_model, model_folder
    from recfuse.generative.lora import LoRAConfig
    from recfuse.knowledge.keywords_policy import PolicyConfig, sft_pairs, train_policy

    rng = np.random.default_rng(0)
    held = np.sort(rng.choice(items, min(config.policy_eval_items, len(items) // 2), False))
    pool = {k: v for k, v in round0["best"].items() if k not in set(held.tolist())}
    variants = variants_of(config.variants)
    lora = LoRAConfig(lr=config.policy_lr, epochs=1, batch_size=8, seed=0)
    pcfg = PolicyConfig(config.policy_keep_quantile, config.policy_max_examples, lora)
    tokenizer = AutoTokenizer.from_pretrained(model_folder(locate_model("smollm2")))
    rewards = round0["scores"]["reward"]
    pairs = sft_pairs(round0["candidates"], rewards, pool, texts, variants, tokenizer, pcfg)
    trained = train_policy(pairs, pcfg)
    folder.log(f"{ds}: policy round 1: {trained.report()}")
    spec = BackendSpec(
        kind=config.policy_backend, model=str(trained.model), threads=config.llm_threads
    )
    round1 = scored_round(f"mmsrarec-{ds}-r1", texts, held, spec, variants, item_vectors)
    stats0, stats1 = round_stats(round0, held), round_stats(round1, held)
    paired = _paired_best(round0, round1, held)
    _write_examples(folder, ds, texts, round0, round1, held)
    return {
        "round 0 (held-out)": stats0, "round 1 (held-out)": stats1,
        "policy training": trained.report(), "round 1 vs 0 (best-of-n reward)": paired,
        "held-out items": len(held),
    }  # fmt: skip


def _paired_best(r0: dict[str, Any], r1: dict[str, Any], held: np.ndarray) -> dict[str, Any]:
    from recfuse.evaluation.significance import paired_arrays

    both = [i for i in held.tolist() if i in r0["best"] and i in r1["best"]]
    a = np.array([r1["scores"]["reward"][r1["best"][i]] for i in both])
    b = np.array([r0["scores"]["reward"][r0["best"][i]] for i in both])
    if len(both) < 2:
        return {"items": len(both)}
    test = paired_arrays(a, b, "best-of-n reward")
    return {"items": len(both), "diff": float(test.diff), "p": float(test.t_pvalue)}


def _candidate_row(c: Candidate, scores: dict[str, np.ndarray], idx: int) -> dict[str, Any]:
    return {
        "variant": c.variant, "status": c.status, "raw": c.raw,
        "keywords": c.keywords.text() if c.keywords else None,
        **{k: float(scores[k][idx]) for k in ("reward", "recon", "info_loss", "rank")},
    }  # fmt: skip


def _write_keywords(
    folder: StudyFolder, ds: str, texts: list[str], rnd: dict[str, Any], keywords: list[str]
) -> None:
    """Every candidate with its reward, and the chosen keywords, in the study folder."""
    rows = [
        {"item": c.item, **_candidate_row(c, rnd["scores"], i)}
        for i, c in enumerate(rnd["candidates"])
    ]
    atomic.write_json(folder.path / f"keywords-{ds}.json", {"candidates": rows, "best": keywords})


def _write_examples(
    folder: StudyFolder,
    ds: str,
    texts: list[str],
    r0: dict[str, Any],
    r1: dict[str, Any],
    held: np.ndarray,
) -> None:
    """``N_EXAMPLES_SHOWN`` held-out items: text, best keywords before and after the round."""
    rng = np.random.default_rng(1)
    shown = rng.choice(held, min(N_EXAMPLES_SHOWN, len(held)), replace=False)
    rows = []
    for item in sorted(int(i) for i in shown):
        row: dict[str, Any] = {"item": item, "text": texts[item][:300]}
        for label, rnd in (("before", r0), ("after", r1)):
            idx = rnd["best"].get(item)
            row[label] = (
                None if idx is None else _candidate_row(rnd["candidates"][idx], rnd["scores"], idx)
            )
        rows.append(row)
    atomic.write_json(folder.path / f"examples-{ds}.json", rows)
