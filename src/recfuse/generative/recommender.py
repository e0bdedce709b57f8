"""`GenerativeRecommender`: the code transformer behind the common `Recommender` interface.

Training and early stopping reuse recfuse's one trainer (`TorchRecommender`: seeds, validation
NDCG@10 under full ranking, ``max_seconds``, ``valid_users``, ``device``).

What full-ranking scores mean for a generative model: ``score`` runs trie-constrained beam
search and gives each of the ``beam`` generated items its summed code log-probability; every
other item gets ``-inf``. The evaluator ranks a target by counting the items scoring *at least*
as high (pessimistic ties), so a target outside the beam ranks below every unmasked item: it can
never be a lucky hit. Recall/NDCG@K are therefore exact for K <= beam, and the beam should be
larger than K because the evaluator masks items the user has already seen (a generated item may
be one of them); ``beam = 2K`` (20) by default here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recfuse.errors import ConfigError
from recfuse.generative.model import BOS, FIRST_CODE, PAD, CodeTransformer
from recfuse.generative.trie import BeamResult, CodeTrie, constrained_beam_search
from recfuse.models.sequential import left_pad
from recfuse.models.training import TorchRecommender, TrainConfig, Validate
from recfuse.split import Split


class GenerativeRecommender(TorchRecommender):
    """Generate the next item's code from the history's codes.

    Args:
        codes: unique item codes, int [n_items, L] (after collision resolution).
        max_items: history items the model reads (the last ones).
        dim, layers, heads, dropout: transformer size.
        beam: beam width at inference (items scored per user).
        score_batch: users per beam-search batch.
        name: label in tables (e.g. ``CEMG``, ``TIGER-text``, ``random-codes``).
        train: optimisation settings (`TrainConfig`), or its fields as keywords.
    """

    def __init__(
        self,
        codes: np.ndarray,
        max_items: int = 10,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.1,
        beam: int = 20,
        score_batch: int = 256,
        name: str = "generative",
        train: TrainConfig | None = None,
        **train_kwargs: Any,
    ) -> None:
        super().__init__(train, **train_kwargs)
        self.codes = np.asarray(codes, dtype=np.int64)
        self.max_items, self.dim, self.layers, self.heads = max_items, dim, layers, heads
        self.dropout, self.beam, self.score_batch, self.name = dropout, beam, score_batch, name
        self.trie = CodeTrie(self.codes)
        self.levels = self.codes.shape[1]
        sizes = self.trie.sizes
        self.offsets = FIRST_CODE + np.r_[0, np.cumsum(sizes)[:-1]]
        # item -> its L tokens; one extra all-PAD row for the padding item index n_items
        tokens = self.codes + self.offsets
        self.item_tokens = np.vstack([tokens, np.full((1, self.levels), PAD)])
        self.vocab_size = int(FIRST_CODE + sizes.sum())

    # ---- training -------------------------------------------------------------------------
    def build(self, split: Split) -> nn.Module:
        if len(self.codes) != split.n_items:
            raise ConfigError(f"codes cover {len(self.codes)} items, the split has {split.n_items}")
        self.n_items_ = split.n_items
        self.trie.to(self.device)  # the trainer has resolved TrainConfig.device by now
        return CodeTransformer(
            self.vocab_size,
            (self.max_items + 1) * self.levels,
            self.dim,
            self.layers,
            self.heads,
            self.dropout,
        )

    def history_tokens(self, histories: Sequence[np.ndarray], n_items: int) -> torch.Tensor:
        """``[BOS] + codes of the last n_items items``, left-padded: [B, 1 + n_items * L]."""
        items = left_pad(histories, n_items, len(self.codes))  # pad index -> the all-PAD row
        tokens = self.item_tokens[items].reshape(len(histories), -1)
        bos = np.full((len(histories), 1), BOS)
        seq = np.concatenate([bos, tokens], 1)
        # move BOS right next to the first real token so padding stays on the left
        first_real = (seq[:, 1:] != PAD).argmax(1)
        has_real = (seq[:, 1:] != PAD).any(1)
        seq[:, 0] = PAD
        seq[np.arange(len(seq)), np.where(has_real, first_real, seq.shape[1] - 1)] = BOS
        return torch.as_tensor(seq, device=self.device)

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[torch.Tensor]:
        if not hasattr(self, "_train_seqs"):
            self._train_seqs = [h for h in split.histories("valid") if len(h) >= 2]
        seqs = self._train_seqs
        order = rng.permutation(len(seqs))
        size = self.train_config.batch_size
        for lo in range(0, len(order), size):
            chunk = [seqs[i][-(self.max_items + 1) :] for i in order[lo : lo + size]]
            yield self.history_tokens(chunk, self.max_items + 1)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        # inputs drop the last token, targets drop the first: every code token is predicted
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits, _ = self.net_(inputs)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD
        )

    def fit(
        self, split: Split, validate: Validate | None = None, **kwargs: Any
    ) -> GenerativeRecommender:
        self.__dict__.pop("_train_seqs", None)
        super().fit(split, validate, **kwargs)
        return self

    # ---- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, histories: Sequence[np.ndarray], beam: int | None = None) -> BeamResult:
        """Trie-constrained beam search for a batch of histories (item indices in time order)."""
        beam = beam or self.beam
        history = self.history_tokens(histories, self.max_items)  # [B, T]
        start = history.shape[1]
        logits, cache = self.net_(history)
        first = logits[:, -1]  # [B, vocab]: the first code of the next item
        history_ok = history != PAD
        lo = self.offsets

        def step(codes: torch.Tensor) -> torch.Tensor:
            b, width, level = codes.shape
            if level == 0:
                out = first[:, lo[0] : lo[0] + self.trie.sizes[0]]
                return out.log_softmax(-1).unsqueeze(1)
            tokens = (codes + torch.as_tensor(lo[:level], device=codes.device)).reshape(
                b * width, level
            )
            out, _ = self.net_(tokens, start, cache, history_ok)
            out = out[:, -1, lo[level] : lo[level] + self.trie.sizes[level]]
            return out.log_softmax(-1).view(b, width, -1)

        return constrained_beam_search(step, self.trie, len(histories), beam)

    @torch.no_grad()
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Beam items get their log-probability, all others -inf (see the module docstring)."""
        self.net_.eval()
        out = np.full((len(histories), self.n_items_), -np.inf, dtype=np.float32)
        for lo in range(0, len(histories), self.score_batch):
            result = self.generate(histories[lo : lo + self.score_batch])
            items, scores = result.items.cpu(), result.scores.cpu()
            rows, cols = torch.nonzero(items >= 0, as_tuple=True)
            out[lo + rows.numpy(), items[rows, cols].numpy()] = scores[rows, cols].numpy()
        return out

    # ---- saving ---------------------------------------------------------------------------
    def init_params(self) -> dict[str, Any]:
        params = super().init_params()
        params.pop("codes", None)  # saved as a tensor (``codes`` in weights.safetensors)
        return params

    def fitted_tensors(self) -> dict[str, torch.Tensor]:
        return {**super().fitted_tensors(), "codes": torch.from_numpy(self.codes)}

    @classmethod
    def tensor_arguments(cls, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"codes": tensors["codes"].numpy()}

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        for key in ("codes", "trie", "offsets", "item_tokens"):
            params.pop(key, None)
        return params
