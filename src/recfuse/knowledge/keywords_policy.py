"""Policy improvement for the keyword summarizer: reward-filtered LoRA fine-tuning (expert
iteration) of SmolLM2 on its own best-of-n summaries.

One round: keep the items whose best candidate's reward is at or above the ``keep_quantile`` of
the best rewards, pair each kept item's prompt (under every variant) with that best summary,
fine-tune LoRA adapters on the pairs (the shared machinery of `recfuse.generative.lora`), save
the adapter, merge it into a dense copy and let the CTranslate2 backend convert that copy, so the
next round generates as fast as round 0. The adapter and the merged copy live in the recfuse
cache (``$RECFUSE_CACHE/models``) under a name that hashes the training pairs and settings: the
weights hash of `recfuse.frozen` reads only the head and tail bytes of the weight files, which a
LoRA merge of the middle layers may leave unchanged, so the folder name is what keeps the new
model's cache keys apart from the base model's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.generative.lora import LoRAConfig, merge_to_folder, save_adapter, target_loss
from recfuse.knowledge.keywords import Candidate, KeywordVariant


@dataclass
class PolicyConfig:
    """Reward filter and LoRA settings of one expert-iteration round."""

    keep_quantile: float = 0.5
    max_examples: int = 600
    lora: LoRAConfig = field(default_factory=lambda: LoRAConfig(lr=5e-4, epochs=1, batch_size=8))


def sft_pairs(
    candidates: Sequence[Candidate],
    rewards: np.ndarray,
    best: dict[int, int],
    texts: Sequence[str],
    variants: Sequence[KeywordVariant],
    tokenizer: Any,
    cfg: PolicyConfig,
) -> list[tuple[str, str]]:
    """(rendered chat prompt, best keyword text) pairs of the reward-filtered items.

    Items are taken in order of decreasing best reward until ``max_examples`` pairs; only
    items whose best reward reaches the ``keep_quantile`` of all best rewards are kept.
    """
    if not best:
        return []
    best_rewards = np.array([rewards[i] for i in best.values()])
    threshold = float(np.quantile(best_rewards, cfg.keep_quantile))
    ranked = sorted(best.items(), key=lambda kv: (-rewards[kv[1]], kv[0]))
    pairs: list[tuple[str, str]] = []
    for item, idx in ranked:
        if rewards[idx] < threshold or len(pairs) >= cfg.max_examples:
            break
        keywords = candidates[idx].keywords
        assert keywords is not None  # best_of_n never picks an invalid answer
        for variant in variants:
            chat = variant.template().build({"item": texts[item]})
            prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            pairs.append((str(prompt), keywords.text()))
    return pairs[: cfg.max_examples]


def round_name(pairs: Sequence[tuple[str, str]], cfg: PolicyConfig, base: str) -> str:
    """A content-addressed model name for the policy trained on ``pairs`` from ``base``."""
    lora = {k: v for k, v in asdict(cfg.lora).items() if k != "losses"}
    blob = json.dumps([base, lora, cfg.keep_quantile, list(pairs)], sort_keys=True)
    return f"smollm2-kw-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


@dataclass
class PolicyRound:
    """What one round trained: the merged model folder (a backend ``model``), the adapter,
    the loss curve, the number of pairs and the seconds of training and merging."""

    model: Path
    adapter: Path
    losses: list[float]
    pairs: int
    train_seconds: float
    merge_seconds: float

    def report(self) -> dict[str, Any]:
        first = float(np.mean(self.losses[:5])) if self.losses else float("nan")
        last = float(np.mean(self.losses[-5:])) if self.losses else float("nan")
        return {
            "model": self.model.name, "pairs": self.pairs, "steps": len(self.losses),
            "loss first 5": first, "loss last 5": last,
            "train_seconds": self.train_seconds, "merge_seconds": self.merge_seconds,
        }  # fmt: skip


def train_policy(
    pairs: Sequence[tuple[str, str]], cfg: PolicyConfig, base: str = "smollm2"
) -> PolicyRound:
    """LoRA-fine-tune ``base`` on ``pairs``, save the adapter, merge into a dense model folder.

    A finished round (its merged folder present) is reused without training again.
    """
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recfuse.data.locate import cache_root
    from recfuse.frozen import locate_model, model_folder
    from recfuse.generative.lora import train_lora, wrap_lora
    from recfuse.models.training import seed_everything

    name = round_name(pairs, cfg, base)
    root = cache_root() / "models"
    merged, adapter = root / name, root / f"{name}-adapter"
    stats = adapter / "train.json"
    if (merged / "config.json").is_file() and stats.is_file():
        saved = json.loads(stats.read_text())
        return PolicyRound(merged, adapter, saved["losses"], len(pairs), saved["train"], 0.0)
    folder = model_folder(locate_model(base))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    seed_everything(cfg.lora.seed)
    model = wrap_lora(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), cfg.lora)
    seconds = train_lora(
        model, list(pairs), lambda batch: target_loss(model, tokenizer, batch), cfg.lora
    )
    save_adapter(model, adapter)
    started = time.perf_counter()
    merge_to_folder(model, tokenizer, merged)
    from recfuse.atomic import write_json

    write_json(stats, {"losses": cfg.lora.losses, "train": seconds, "pairs": len(pairs)})
    return PolicyRound(
        merged, adapter, list(cfg.lora.losses), len(pairs), seconds, time.perf_counter() - started
    )
