"""The language-model stage: SmolLM2-135M-Instruct, fine-tuned with LoRA, generates item codes.

Every code of every level becomes one new token (``<a_12>`` is code 12 at level 1, ``<b_3>`` code
3 at level 2, ...). A user's history is written as a short prompt of such codes; the model learns
to continue it with the next item's code. Only the LoRA adapters of the attention projections
and the embedding rows of the new tokens are trained (peft's ``trainable_token_indices``), so the
language model itself stays frozen. Decoding uses the same trie-constrained beam search as the
small code transformer, so only existing items come out.

Runs on a CPU on a small subset with a few steps (tests, smoke runs) and at full size on a GPU
(``device="auto"`` picks CUDA when present). A fresh copy of the weights is loaded (not the
shared frozen one from `recfuse.frozen.load_frozen`), because adding tokens changes the model.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recfuse.errors import ConfigError
from recfuse.frozen import locate_model, model_folder
from recfuse.generative.lora import (
    LoRAConfig,
    left_padded,
    positions,
    target_loss,
    train_lora,
    wrap_lora,
)
from recfuse.generative.trie import BeamResult, CodeTrie, constrained_beam_search
from recfuse.models.base import Recommender
from recfuse.models.training import resolve_device, seed_everything
from recfuse.split import Split

LEVEL_LETTERS = string.ascii_lowercase


def code_token(level: int, code: int) -> str:
    """The new token for ``code`` at ``level`` (0-based), e.g. ``<a_12>``."""
    return f"<{LEVEL_LETTERS[level]}_{code}>"


def code_tokens(sizes: Sequence[int]) -> list[str]:
    """All new tokens, level by level."""
    return [code_token(level, c) for level, size in enumerate(sizes) for c in range(int(size))]


@dataclass
class LMStageConfig:
    """LoRA fine-tuning settings.

    ``max_users`` restricts training to a random subset of users (CPU runs); ``steps`` is the
    number of optimizer steps of ``batch_size`` examples; ``device="auto"`` picks CUDA if any.
    """

    model: str = "smollm2"
    max_items: int = 10
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lr: float = 1e-3
    steps: int = 1000
    batch_size: int = 16
    max_users: int | None = None
    seed: int = 0
    device: str = "auto"
    max_seconds: float | None = None
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    losses: list[float] = field(default_factory=list)


class CodeLM(Recommender):
    """SmolLM2 + LoRA that writes the next item's code; a `Recommender` like any other.

    Args:
        codes: unique item codes, int [n_items, L].
        config: `LMStageConfig`.
    """

    name = "SmolLM2-LoRA"

    def __init__(self, codes: np.ndarray, config: LMStageConfig | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config or LMStageConfig()
        self.codes = np.asarray(codes, dtype=np.int64)
        self.trie = CodeTrie(self.codes)
        self.device = resolve_device(self.config.device)
        folder = model_folder(locate_model(self.config.model))
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"  # generation continues at the right end
        new_tokens = code_tokens(self.trie.sizes)
        self.tokenizer.add_tokens(new_tokens)
        self.level_ids = [
            torch.as_tensor(
                self.tokenizer.convert_tokens_to_ids(
                    [code_token(level, c) for c in range(int(size))]
                )
            )
            for level, size in enumerate(self.trie.sizes)
        ]
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        old = int(model.get_input_embeddings().weight.shape[0])  # type: ignore[index]
        model.resize_token_embeddings(len(self.tokenizer), mean_resizing=True)
        new_ids = list(range(old, len(self.tokenizer)))
        self.model = wrap_lora(model, self.lora_config(), new_ids).to(self.device)
        self.trie.to(self.device)
        self.level_ids = [ids.to(self.device) for ids in self.level_ids]
        self.new_token_ids_ = new_ids

    # ---- text -----------------------------------------------------------------------------
    def item_text(self, item: int) -> str:
        return "".join(code_token(level, int(c)) for level, c in enumerate(self.codes[item]))

    def prompt(self, history: Sequence[int] | np.ndarray) -> str:
        """The prompt for a history (item indices in time order); the last items only."""
        recent = " ".join(self.item_text(i) for i in list(history)[-self.config.max_items :])
        return f"A shopper bought, in order: {recent}\nThe next item is: "

    # ---- training -------------------------------------------------------------------------
    def examples(self, split: Split, rng: np.random.Generator) -> list[tuple[str, str]]:
        """(prompt, target code) pairs from the training histories only: every prefix of every
        user's training sequence predicts its next item."""
        histories = [h for h in split.histories("valid") if len(h) >= 2]
        if self.config.max_users is not None and self.config.max_users < len(histories):
            keep = rng.choice(len(histories), self.config.max_users, replace=False)
            histories = [histories[i] for i in sorted(keep)]
        return [
            (self.prompt(h[:cut]), self.item_text(int(h[cut])))
            for h in histories
            for cut in range(1, len(h))
        ]

    def lora_config(self) -> LoRAConfig:
        """The shared `LoRAConfig` of this stage's settings (losses land in ``config.losses``)."""
        c = self.config
        return LoRAConfig(
            c.lora_r, c.lora_alpha, c.lora_dropout, c.lr, c.steps, None, c.batch_size, c.seed,
            c.max_seconds, tuple(c.target_modules), c.losses,
        )  # fmt: skip

    def batch_loss(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        """Cross-entropy on the target code tokens (and EOS) only; prompts are not scored."""
        return target_loss(self.model, self.tokenizer, pairs, self.device)

    def fit(self, split: Split, **kwargs: Any) -> CodeLM:
        """LoRA fine-tuning for ``config.steps`` steps (or ``config.max_seconds``)."""
        super().fit(split)
        if len(self.codes) != split.n_items:
            raise ConfigError(f"codes cover {len(self.codes)} items, the split has {split.n_items}")
        cfg = self.config
        seed_everything(cfg.seed)
        pairs = self.examples(split, np.random.default_rng(cfg.seed))
        if not pairs:
            raise ConfigError("no training examples: every training history is shorter than 2")
        self.train_seconds_ = train_lora(self.model, pairs, self.batch_loss, self.lora_config())
        return self

    def trainable_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.model.parameters())

    # ---- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, histories: Sequence[np.ndarray], beam: int = 20) -> BeamResult:
        """Trie-constrained beam search over code tokens for each history."""
        tok = self.tokenizer
        prompts = [tok(self.prompt(h), add_special_tokens=False)["input_ids"] for h in histories]
        ids, _, mask = left_padded([(p, []) for p in prompts], tok.pad_token_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        # the prompt is encoded once; each beam step feeds only the generated code tokens,
        # attending to a copy of the prompt's key/value cache
        prompt = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=True
        )
        first, cache = prompt.logits[:, -1], prompt.past_key_values
        lengths = mask.sum(1, keepdim=True)

        def step(codes: torch.Tensor) -> torch.Tensor:
            b, w, level = codes.shape
            if level == 0:
                return first[:, self.level_ids[0]].log_softmax(-1).unsqueeze(1)
            # token ids of the codes generated so far, level by level: [B * W, level]
            generated = torch.zeros(b * w, level, dtype=torch.long, device=codes.device)
            for lv in range(level):
                generated[:, lv] = self.level_ids[lv][codes[..., lv].reshape(-1)]
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(w)
            att = torch.cat([mask.repeat_interleave(w, 0), torch.ones_like(generated)], 1)
            pos = lengths.repeat_interleave(w, 0) + torch.arange(level, device=codes.device)
            logits = self.model(
                input_ids=generated, attention_mask=att, position_ids=pos, past_key_values=past
            ).logits[:, -1]
            # the next token must be one of this level's codes: renormalise over them
            return logits[:, self.level_ids[level]].log_softmax(-1).view(b, w, -1)

        return constrained_beam_search(step, self.trie, len(histories), beam)

    @torch.no_grad()
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Beam items get their log-probability, all others -inf (as `GenerativeRecommender`)."""
        out = np.full((len(histories), len(self.codes)), -np.inf, dtype=np.float32)
        result = self.generate(histories)
        items, scores = result.items.cpu(), result.scores.cpu()
        rows, cols = torch.nonzero(items >= 0, as_tuple=True)
        out[rows.numpy(), items[rows, cols].numpy()] = scores[rows, cols].numpy()
        return out
