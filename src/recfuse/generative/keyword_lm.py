"""A small LM recommender over keyword summaries (MMSRARec step 3): SmolLM2 + LoRA, multi-task.

Tasks (supervised fine-tuning, one pass over a bounded sample):

- next item: the keyword summaries of a user's last items (oldest first, fenced: they are LLM
  output) and, with ``collab``, the keywords of the items most co-consumed with that history
  (a retrieved context block) -> the next item's keywords;
- keyword reconstruction: an item's text (fenced) -> its keywords.

Every training prompt comes from the training interactions only (``split.histories("valid")``);
the (user, item) pairs behind each prompt are checked with `check_pairs_in_train` before any
training. Two read-outs, labelled by the caller: ``candidate_scores`` (mean log-probability of
each candidate's keywords, for sampled-candidate ranking) and ``generate`` (greedy keywords, for
full ranking by retrieving items with them: `KeywordRetriever`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recfuse.errors import ConfigError
from recfuse.frozen import locate_model, model_folder
from recfuse.generative.lora import LoRAConfig, left_padded, target_loss, train_lora, wrap_lora
from recfuse.llm.leakage import check_pairs_in_train
from recfuse.llm.prompts import fence
from recfuse.models.base import Recommender
from recfuse.models.training import resolve_device, seed_everything
from recfuse.split import Split

ContextFn = Callable[[np.ndarray], list[str]]


@dataclass
class KeywordLMConfig:
    """Prompt shape, the bounded SFT sample and LoRA settings."""

    model: str = "smollm2"
    max_history: int = 5
    n_examples: int = 800
    recon_fraction: float = 0.25
    max_prompt_tokens: int = 192
    device: str = "cpu"
    lora: LoRAConfig = field(default_factory=lambda: LoRAConfig(lr=5e-4, epochs=1, batch_size=8))


@dataclass
class KeywordPrompts:
    """The prompts and targets of both tasks, and the bounded SFT sample (no model needed).

    Args:
        keywords: one keyword text per item index.
        item_texts: one text per item index (the reconstruction task's input).
        max_history: items of the history shown (the latest ones).
        context: ``history -> keyword texts`` of retrieved co-consumed items (None: no block).
    """

    keywords: list[str]
    item_texts: list[str]
    max_history: int = 5
    context: ContextFn | None = None

    def prompt(self, history: np.ndarray) -> str:
        """The next-item prompt for a history (item indices, time order)."""
        recent = list(history)[-self.max_history :]
        lines = "\n".join(f"- {self.keywords[int(i)]}" for i in recent)
        text = "Keywords of the items a user chose, oldest first:\n" + fence(lines, "history")
        if self.context is not None:
            block = "\n".join(f"- {k}" for k in self.context(np.asarray(history))) or "- none"
            text += "\nItems often chosen together with these:\n" + fence(block, "collab")
        return text + "\nKeywords of the next item:"

    def recon_prompt(self, item: int) -> str:
        return "Item:\n" + fence(self.item_texts[item], "item", 400) + "\nKeywords:"

    def target(self, item: int) -> str:
        return " " + self.keywords[int(item)]

    def examples(
        self, split: Split, n_examples: int, recon_fraction: float, rng: np.random.Generator
    ) -> tuple[list[tuple[str, str]], list[tuple[int, int]]]:
        """(prompt, target) pairs, next-item first, and the (user, item) pairs they read.

        Next-item examples are random (user, cut) slots of the training histories only
        (``split.histories("valid")``): the history before the cut predicts the item at it.
        """
        histories = split.histories("valid")
        slots = [(u, cut) for u, h in enumerate(histories) for cut in range(1, len(h))]
        if not slots:
            raise ConfigError("no training examples: every training history is shorter than 2")
        take = rng.choice(len(slots), min(n_examples, len(slots)), replace=False)
        pairs, seen = [], []
        for u, cut in (slots[i] for i in sorted(take)):
            h = histories[u]
            pairs.append((self.prompt(h[:cut]), self.target(h[cut])))
            seen += [(u, int(i)) for i in h[max(0, cut - self.max_history) : cut + 1]]
        n_recon = min(int(round(recon_fraction * len(pairs))), len(self.keywords))
        for item in rng.choice(len(self.keywords), n_recon, replace=False):
            pairs.append((self.recon_prompt(int(item)), self.target(int(item))))
        return pairs, seen


class KeywordLM:
    """SmolLM2 + LoRA that writes the next item's keywords.

    Args:
        keywords: one keyword text per item index.
        item_texts: one text per item index (the reconstruction task's input).
        config: `KeywordLMConfig`.
        context: ``history -> keyword texts`` of retrieved co-consumed items (None: no block).
    """

    def __init__(
        self,
        keywords: Sequence[str],
        item_texts: Sequence[str],
        config: KeywordLMConfig | None = None,
        context: ContextFn | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config or KeywordLMConfig()
        self.prompts = KeywordPrompts(
            list(keywords), list(item_texts), self.config.max_history, context
        )
        self.device = resolve_device(self.config.device)
        folder = model_folder(locate_model(self.config.model))
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        seed_everything(self.config.lora.seed)
        base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        self.model = wrap_lora(base, self.config.lora).to(self.device)
        self.model.eval()

    # ---- training -------------------------------------------------------------------------
    def batch_loss(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        cap = self.config.max_prompt_tokens
        return target_loss(self.model, self.tokenizer, pairs, self.device, cap)

    def fit(self, split: Split) -> KeywordLM:
        """Check that every prompt reads training interactions only, then fine-tune once."""
        cfg = self.config
        rng = np.random.default_rng(cfg.lora.seed)
        pairs, seen = self.prompts.examples(split, cfg.n_examples, cfg.recon_fraction, rng)
        check_pairs_in_train(split, seen)
        self.n_examples_ = len(pairs)
        self.train_seconds_ = train_lora(self.model, pairs, self.batch_loss, self.config.lora)
        return self

    # ---- inference ------------------------------------------------------------------------
    def _encode_prompt(self, history: np.ndarray) -> list[int]:
        ids = self.tokenizer(self.prompts.prompt(history), add_special_tokens=False)["input_ids"]
        return list(ids[-self.config.max_prompt_tokens :])

    @torch.no_grad()
    def candidate_scores(
        self, histories: Sequence[np.ndarray], candidates: np.ndarray, chunk: int = 50
    ) -> np.ndarray:
        """Mean log-probability of each candidate's keywords (and EOS) after each user's prompt.

        ``candidates`` int [U, C] -> float [U, C]. The prompt is encoded once per user; the
        candidates attend to copies of its key/value cache.
        """
        tok = self.tokenizer
        targets = {
            int(i): tok(self.prompts.target(int(i)), add_special_tokens=False)["input_ids"]
            + [tok.eos_token_id]
            for i in np.unique(candidates)
        }
        out = np.zeros(candidates.shape, dtype=np.float32)
        for row, history in enumerate(histories):
            ids = torch.as_tensor([self._encode_prompt(history)], device=self.device)
            first = self.model(input_ids=ids, use_cache=True)
            for lo in range(0, candidates.shape[1], chunk):
                cands = [targets[int(i)] for i in candidates[row, lo : lo + chunk]]
                out[row, lo : lo + len(cands)] = self._continuations(first, ids.shape[1], cands)
        return out

    def _continuations(self, first: Any, n_prompt: int, cands: list[list[int]]) -> np.ndarray:
        """Mean log-prob of each token list after a prompt whose forward output is ``first``."""
        width = max(len(c) for c in cands)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(cands), width), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros((len(cands), width), dtype=torch.long, device=self.device)
        for r, c in enumerate(cands):
            ids[r, : len(c)] = torch.as_tensor(c)
            mask[r, : len(c)] = 1
        past = copy.deepcopy(first.past_key_values)
        past.batch_repeat_interleave(len(cands))
        att = torch.cat([torch.ones(len(cands), n_prompt, dtype=torch.long), mask.cpu()], 1)
        pos = n_prompt + torch.arange(width).expand(len(cands), width)
        logits = self.model(
            input_ids=ids, attention_mask=att.to(self.device), position_ids=pos.to(self.device),
            past_key_values=past,
        ).logits  # fmt: skip
        # token t is predicted by position t-1 (t = 0: by the prompt's last position)
        pred = torch.cat([first.logits[:, -1:].expand(len(cands), 1, -1), logits[:, :-1]], 1)
        logp = pred.log_softmax(-1).gather(2, ids.unsqueeze(-1)).squeeze(-1) * mask
        return (logp.sum(1) / mask.sum(1)).cpu().numpy()

    @torch.no_grad()
    def generate(
        self, histories: Sequence[np.ndarray], max_new_tokens: int = 16, batch: int = 16
    ) -> list[str]:
        """Greedy keywords of the next item for each history."""
        tok, out = self.tokenizer, []
        for lo in range(0, len(histories), batch):
            prompts = [self._encode_prompt(h) for h in histories[lo : lo + batch]]
            ids, _, mask = left_padded([(p, []) for p in prompts], tok.pad_token_id)
            width = ids.shape[1]
            gen = self.model.generate(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id,
            )  # fmt: skip
            out += tok.batch_decode(gen[:, width:], skip_special_tokens=True)
        return [t.strip() for t in out]


class KeywordRetriever(Recommender):
    """Full ranking from generated keywords: cosine of their MiniLM vector to every item's
    keyword vector (``item_vectors`` unit-length [n_items, d])."""

    name = "KeywordLM-retrieval"

    def __init__(self, lm: KeywordLM, item_vectors: np.ndarray, encoder: str = "minilm") -> None:
        self.lm, self.item_vectors, self.encoder = lm, item_vectors, encoder
        self.generated_: list[str] = []

    def fit(self, split: Split, **kwargs: Any) -> KeywordRetriever:
        super().fit(split)
        return self

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[B, n_items] cosine similarities of the generated keywords to each item's keywords."""
        from recfuse.features.embed import embed

        texts = self.lm.generate(histories)
        self.generated_ += texts
        vectors = embed([t or "none" for t in texts], self.encoder)
        return (vectors @ self.item_vectors.T).astype(np.float32)
