"""The LoRA machinery shared by the language-model parts: wrap, batch, train, save, load, merge.

`CodeLM` (the CEMG LM stage: new code tokens) and `KeywordLM` / the keyword policy of MMSRARec
(plain text targets) train SmolLM2 the same way: only LoRA adapters on the attention projections
(plus, for new tokens, their embedding rows) are trained, on (prompt, target) pairs where only the
target tokens are scored. Prompts are left-padded so every row's target ends at the right edge.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class LoRAConfig:
    """Adapter shape and optimiser of one LoRA fine-tuning run.

    ``steps`` optimizer steps of ``batch_size`` pairs drawn at random (``epochs`` instead, when
    set, passes over the pairs in a seeded shuffled order); ``max_seconds`` is a CPU safety cap.
    """

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lr: float = 1e-3
    steps: int = 100
    epochs: int | None = None
    batch_size: int = 8
    seed: int = 0
    max_seconds: float | None = None
    target_modules: tuple[str, ...] = ATTENTION
    losses: list[float] = field(default_factory=list)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids for left-padded rows: 0 at each row's first real token. [B, T] -> [B, T]."""
    return (mask.cumsum(1) - 1).clamp(min=0)


def wrap_lora(model: Any, cfg: LoRAConfig, new_token_ids: Sequence[int] | None = None) -> Any:
    """``model`` with LoRA adapters (peft); ``new_token_ids`` rows of the input embedding train
    too (tokens added to the vocabulary)."""
    from peft import LoraConfig, get_peft_model

    extra: dict[str, Any] = {}
    if new_token_ids:
        extra["trainable_token_indices"] = {"embed_tokens": list(new_token_ids)}
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
        **extra,
    )
    return get_peft_model(model, lora)


def left_padded(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ids, labels, mask)`` [B, T] for (prompt ids, target ids) pairs, left-padded; labels are
    -100 except on the target tokens (empty targets: prompts to continue, e.g. generation)."""
    width = max(len(p) + len(t) for p, t in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, (p, t) in enumerate(pairs):
        seq = list(p) + list(t)
        ids[row, width - len(seq) :] = torch.as_tensor(seq)
        if len(t):
            labels[row, width - len(t) :] = torch.as_tensor(list(t))
        mask[row, width - len(seq) :] = 1
    return ids, labels, mask


def target_loss(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    device: Any = "cpu",
    max_prompt_tokens: int | None = None,
) -> torch.Tensor:
    """Mean cross-entropy on the target tokens (and EOS) of (prompt text, target text) pairs.

    Prompts are tokenized without special tokens (a rendered chat template carries its own);
    ``max_prompt_tokens`` keeps the last tokens of a long prompt.
    """
    encoded = []
    for prompt, target in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if max_prompt_tokens is not None:
            p = p[-max_prompt_tokens:]
        t = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        encoded.append((p, t))
    ids, labels, mask = left_padded(encoded, tokenizer.pad_token_id)
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions(mask).to(device),
        labels=labels.to(device),
    )
    return out.loss


def train_lora(model: Any, pairs: Sequence[Any], loss_fn: Any, cfg: LoRAConfig) -> float:
    """Optimise the trainable parameters of ``model`` on ``pairs``; losses go to ``cfg.losses``.

    ``loss_fn(batch) -> scalar tensor``. Returns the training seconds.
    """
    rng = np.random.default_rng(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr)
    model.train()
    started = time.perf_counter()
    cfg.losses.clear()
    for idx in _batches(len(pairs), cfg, rng):
        loss = loss_fn([pairs[i] for i in idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        cfg.losses.append(float(loss.detach()))
        if cfg.max_seconds is not None and time.perf_counter() - started > cfg.max_seconds:
            break
    model.eval()
    return time.perf_counter() - started


def _batches(n: int, cfg: LoRAConfig, rng: np.random.Generator) -> list[np.ndarray]:
    size = min(cfg.batch_size, n)
    if cfg.epochs is None:
        return [rng.integers(0, n, size) for _ in range(cfg.steps)]
    out = []
    for _ in range(cfg.epochs):
        order = rng.permutation(n)
        out += [order[i : i + size] for i in range(0, n, size)]
    return out


def save_adapter(model: Any, folder: str | Path) -> Path:
    """Write the adapter weights and config (peft's ``save_pretrained``: safetensors, no pickle)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    return folder


def load_adapter(base: Any, folder: str | Path) -> Any:
    """``base`` with the adapter saved in ``folder`` applied (inference mode)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(folder))


def merge_to_folder(model: Any, tokenizer: Any, folder: str | Path) -> Path:
    """Merge the adapter into a dense copy and save it with the tokenizer (a model folder that
    `recfuse.frozen.locate_model` and the CTranslate2 converter read). Written to a temporary
    folder and renamed, so a killed save leaves no half model."""
    import os
    import shutil

    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    merged = model.merge_and_unload()
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    os.replace(tmp, folder)
    return folder
