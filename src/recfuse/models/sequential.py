"""Sequential recommenders (SASRec, GRU4Rec) over any `ItemEncoder`.

Training: windows of up to ``max_len + 1`` items of each user's training sequence predict each
next item. ``windows="last"`` (default, as in the SASRec paper's code) keeps only each user's
last window (on ml-100k at max_len 50, 40% of the targets); ``windows="sliding"`` cuts every
long history into windows ``stride`` items apart, so every next-item target is a training target
exactly once per epoch, with at least ``max_len - stride`` items of context where the history
has them. Measured on ml-100k (SASRec, max_len 50, 3 seeds, early stopping): sliding windows
reach test NDCG@10 0.0999 vs 0.0863 for the last window (p = 7e-5), in fewer epochs
(docs/results/efficiency.md); new configs should use ``sliding``. ``last`` stays the default
because every study result and the demo's time budget in docs/ were measured with it. Loss
``ce`` is the full softmax over all items; ``sampled`` is a sampled softmax against ``negatives``
uniformly drawn items shared by the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recfuse.errors import ConfigError, DataError
from recfuse.models.encoder_spec import FeatureEncoderFactory
from recfuse.models.gru4rec import GRU4RecNet
from recfuse.models.item_encoders import IdEncoder, ItemEncoder
from recfuse.models.sasrec import SASRecNet
from recfuse.models.training import TorchRecommender, TrainConfig, Validate
from recfuse.split import Split

EncoderFactory = Callable[[Split, int], ItemEncoder]


def left_pad(seqs: Sequence[np.ndarray], length: int, pad: int) -> np.ndarray:
    """The last ``length`` items of each sequence, left-padded with ``pad``: [B, length]."""
    out = np.full((len(seqs), length), pad, dtype=np.int64)
    for row, seq in enumerate(seqs):
        tail = seq[-length:]
        if len(tail):
            out[row, length - len(tail) :] = tail
    return out


def training_windows(
    seqs: Sequence[np.ndarray], max_len: int, pad: int, stride: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training windows over ``seqs``: (sequence index [W], inputs [W, max_len], targets [W, max_len]).

    Windows end every ``stride`` items from each sequence's end (``None``: one window, the last);
    a window holds up to ``max_len + 1`` items, left-padded with ``pad``. Of each window's targets
    only the last ``stride`` count (the others are set to ``pad``): they are the targets the next
    later window does not reach, so every target (positions 1 .. n - 1) counts exactly once.
    """
    if stride is not None and not 1 <= stride <= max_len:
        raise ConfigError(f"model.stride: {stride} is not between 1 and max_len ({max_len})")
    rows, cuts = [], []
    for row, seq in enumerate(seqs):
        for end in window_ends(len(seq), stride):
            rows.append(row)
            cuts.append(seq[max(0, end - max_len - 1) : end])
    inputs = left_pad([c[:-1] for c in cuts], max_len, pad)
    targets = left_pad([c[1:] for c in cuts], max_len, pad)
    if stride is not None:
        targets[:, : max_len - stride] = pad
    return np.asarray(rows, dtype=np.int64), inputs, targets


def window_ends(n: int, stride: int | None) -> Sequence[int]:
    """Where the training windows of an n-item sequence end (one window when stride is None)."""
    return [n] if stride is None else range(n, 1, -stride)


def id_encoder(split: Split, dim: int) -> ItemEncoder:
    """The default encoder factory: trainable ID embeddings."""
    return IdEncoder(split.n_items, dim)


class SequentialRecommender(TorchRecommender):
    """A backbone network plus an item encoder, trained for next-item prediction.

    Args:
        dim: model width (and item vector size).
        max_len: history length the model reads.
        windows: ``last`` (one window per user) or ``sliding`` (every target once per epoch).
        stride: items between sliding windows' ends, 1 .. max_len (default: max_len).
        loss: ``ce`` (full cross-entropy) or ``sampled`` (sampled softmax).
        negatives: negatives per batch for ``sampled``.
        encoder: builds the `ItemEncoder` from (split, dim); ID embeddings by default.
        train: optimisation settings (`TrainConfig`), or pass its fields as keywords.
    """

    backbone: str = ""
    param_attributes = {"loss": "loss_name"}

    def __init__(
        self,
        dim: int = 64,
        max_len: int = 50,
        loss: str = "ce",
        negatives: int = 256,
        dropout: float = 0.2,
        windows: str = "last",
        stride: int | None = None,
        encoder: EncoderFactory | dict[str, Any] | None = None,
        train: TrainConfig | None = None,
        **train_kwargs: Any,
    ) -> None:
        super().__init__(train, **train_kwargs)
        if loss not in ("ce", "sampled"):
            raise ConfigError(f"model.loss: {loss!r} is not 'ce' or 'sampled'")
        if windows not in ("sliding", "last"):
            raise ConfigError(f"model.windows: {windows!r} is not 'sliding' or 'last'")
        self.windows, self.stride = windows, stride
        self.dim, self.max_len, self.loss_name, self.negatives, self.dropout = (
            dim,
            max_len,
            loss,
            negatives,
            dropout,
        )
        if isinstance(encoder, dict):  # a saved model's encoder description
            encoder = FeatureEncoderFactory.from_description(encoder)
        self.encoder_factory = encoder or id_encoder
        self.name = f"{self.backbone}" + ("" if loss == "ce" else "-sampled")

    def make_net(self, encoder: ItemEncoder) -> nn.Module:
        raise NotImplementedError

    def build(self, split: Split) -> nn.Module:
        self.n_items_ = split.n_items
        return self.make_net(self.encoder_factory(split, self.dim))

    def item_table(self) -> torch.Tensor:
        """Encoder output plus a zero row for the padding index: [n_items + 1, dim].

        A loaded model computes it once (`restore`): its weights no longer change, and a
        feature encoder's adapters over the whole catalogue would otherwise run per request.
        """
        cached = self.__dict__.get("_table_cache")
        if cached is not None:
            return cached
        table = self.net_.encoder()
        return torch.cat([table, table.new_zeros(1, table.shape[1])])

    def training_stride(self) -> int | None:
        """Items between training windows' ends; None: one window per user (``last``)."""
        return (self.stride or self.max_len) if self.windows == "sliding" else None

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        """Shuffled minibatches of the rows of `training_tensors` (built once per fit)."""
        if not hasattr(self, "_windows"):
            self._windows = self.training_tensors(split)
        order = torch.as_tensor(rng.permutation(len(self._windows[0])))
        for lo in range(0, len(order), self.train_config.batch_size):
            rows = order[lo : lo + self.train_config.batch_size]
            yield tuple(t[rows] for t in self._windows)

    def training_tensors(self, split: Split) -> tuple[torch.Tensor, ...]:
        """The epoch's rows: inputs, targets [W, max_len] (pad = n_items); subclasses may add
        per-target tensors of the same shape, which `batches` slices alongside."""
        seqs = [h for h in split.histories("valid") if len(h) >= 2]
        _, x, y = training_windows(seqs, self.max_len, split.n_items, self.training_stride())
        return torch.as_tensor(x), torch.as_tensor(y)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        table = self.item_table()
        hidden = self.net_(inputs, table)
        keep = targets < self.n_items_
        h, y = hidden[keep], targets[keep]
        if self.loss_name == "ce":
            return F.cross_entropy(h @ table[:-1].T, y)
        neg = torch.randint(0, self.n_items_, (self.negatives,), device=h.device)
        pos_logit = (h * table[y]).sum(-1, keepdim=True)
        neg_logit = h @ table[neg].T
        # a sampled negative equal to the target is not a negative
        neg_logit = neg_logit.masked_fill(neg[None, :] == y[:, None], -torch.inf)
        logits = torch.cat([pos_logit, neg_logit], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(y), dtype=torch.long, device=h.device))

    @torch.no_grad()
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        table = self.item_table()
        seq = torch.as_tensor(left_pad(histories, self.max_len, self.n_items_), device=self.device)
        hidden = self.net_(seq, table)[:, -1]
        return (hidden @ table[:-1].T).cpu().numpy()

    def restore(
        self,
        tensors: dict[str, torch.Tensor],
        meta: dict[str, Any],
        split: Split,
        device: torch.device,
    ) -> None:
        super().restore(tensors, meta, split, device)
        with torch.no_grad():
            self._table_cache = self.item_table()

    def fit(
        self, split: Split, validate: Validate | None = None, **kwargs: Any
    ) -> SequentialRecommender:
        self.__dict__.pop("_windows", None)
        self.__dict__.pop("_table_cache", None)
        super().fit(split, validate, **kwargs)
        return self

    def report(self) -> dict[str, Any]:
        """What the item encoder learned (e.g. DFF layer weights)."""
        return self.net_.encoder.report()

    def init_params(self) -> dict[str, Any]:
        params = super().init_params()
        factory = self.encoder_factory
        if isinstance(factory, FeatureEncoderFactory):
            params["encoder"] = factory.describe()
        elif factory is not id_encoder:
            # an arbitrary callable cannot be written as JSON; the default ID encoder needs none
            raise DataError(
                f"{self.name}: a model built with a custom encoder factory cannot be saved; "
                "name the encoder with FeatureEncoderFactory (model.encoder in a config)"
            )
        return params

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments under their constructor names, so that
        ``type(m)(**m.get_params())`` rebuilds the model (the encoder factory is code, not a
        parameter: `encoder_name` says which encoder a fitted model has)."""
        params = super().get_params()
        for derived in ("encoder_factory", "name"):
            params.pop(derived, None)
        params["loss"] = params.pop("loss_name")
        return params

    def encoder_name(self) -> str | None:
        """Class name of the fitted model's item encoder (None before `fit`)."""
        return type(self.net_.encoder).__name__ if hasattr(self, "net_") else None


class SASRec(SequentialRecommender):
    """SASRec; see `SequentialRecommender` for the shared arguments and `SASRecNet` for the shape.

    Args: blocks, heads, ffn (FFN width, default the model width), norm (``pre``/``post``).
    ``SASRec(heads=2, ffn=256, norm="post", dropout=0.5)`` is RecBole's default SASRec.
    """

    backbone = "SASRec"

    def __init__(
        self,
        blocks: int = 2,
        heads: int = 1,
        ffn: int | None = None,
        norm: str = "pre",
        **kwargs: Any,
    ) -> None:
        if norm not in ("pre", "post"):
            raise ConfigError(f"model.norm: {norm!r} is not 'pre' or 'post'")
        self.blocks, self.heads, self.ffn, self.norm = blocks, heads, ffn, norm
        super().__init__(**kwargs)

    def make_net(self, encoder: ItemEncoder) -> nn.Module:
        return SASRecNet(
            encoder, self.max_len, self.blocks, self.heads, self.dropout, self.ffn, self.norm
        )


class GRU4Rec(SequentialRecommender):
    """GRU4Rec; see `SequentialRecommender` for the shared arguments."""

    backbone = "GRU4Rec"

    def __init__(self, layers: int = 1, **kwargs: Any) -> None:
        self.layers = layers
        super().__init__(**kwargs)

    def make_net(self, encoder: ItemEncoder) -> nn.Module:
        return GRU4RecNet(encoder, self.max_len, self.layers, self.dropout)
