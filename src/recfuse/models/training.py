"""One trainer for every torch recommender: seeds, progress, early stopping, safetensors checkpoints.

A `TorchRecommender` says how to build its network, how to cut an epoch into batches and what the
loss of a batch is; `fit` does the rest the same way for all of them. Model selection uses the
validation NDCG@10 under full ranking and nothing from the test period.
"""

from __future__ import annotations

import random
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from recfuse.atomic import atomic_path
from recfuse.errors import ConfigError
from recfuse.models.base import Recommender
from recfuse.models.early_stopping import EarlyStopping
from recfuse.split import Split


@dataclass
class TrainConfig:
    """Optimisation settings shared by all torch models: the one definition of these fields.

    Run configs (`recfuse.runs.config.TrainSection`) and study configs (`StudyConfig.train`)
    derive their ``train:`` section from this class; the ``Annotated`` bounds apply there.
    """

    epochs: Annotated[int, Field(ge=1, le=100_000)] = 100
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 256
    lr: Annotated[float, Field(gt=0.0, le=10.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0, le=10.0)] = 0.0
    # epochs without a better validation score before stopping; None: never stop early (and
    # `fit` may then run without a validation score, keeping the last epoch's weights)
    patience: Annotated[int | None, Field(ge=1, le=100_000)] = 5
    seed: int = 0
    valid_metric: str = "NDCG@10"
    # evaluate early stopping on a fixed random subset of validation users (speed)
    valid_users: Annotated[int | None, Field(ge=1)] = None
    # stop after this much training time (a budgeted preset)
    max_seconds: Annotated[float | None, Field(gt=0.0)] = None
    checkpoint: str | None = None  # safetensors path for the best weights
    progress: bool = True
    device: str = "cpu"  # "cuda" when a GPU is there; "auto" picks it when available


#: ``validate(model) -> score``: the caller's validation score for early stopping (higher is better)
Validate = Callable[["TorchRecommender"], float]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tensor, or a tuple/list of tensors, to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(b, device) for b in batch)
    return batch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TorchRecommender(Recommender):
    """Base for neural recommenders. Subclasses implement `build`, `batches`, `loss`, `score`."""

    net_: Any  # the network `build` returned (typed loosely: each subclass knows its own)

    def __init__(self, train: TrainConfig | None = None, **train_kwargs: Any) -> None:
        self.train_config = train or TrainConfig(**train_kwargs)
        self.history_: list[dict[str, float]] = []

    @abstractmethod
    def build(self, split: Split) -> torch.nn.Module:
        """Create the network for this split's catalogue."""

    @abstractmethod
    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Any]:
        """One epoch of training batches."""

    @abstractmethod
    def loss(self, batch: Any) -> torch.Tensor:
        """Scalar training loss of one batch."""

    def fit(
        self, split: Split, validate: Validate | None = None, **kwargs: Any
    ) -> TorchRecommender:
        """Train on ``split.train``; early stopping on ``validate`` (from the caller).

        ``validate(model) -> float`` scores the model on validation data after each epoch,
        higher is better (`recfuse.evaluation.validation_score` builds the standard one:
        full-ranking ``train.valid_metric`` on the validation stage;
        `recfuse.evaluation.fit_validated` passes it). The best epoch's weights are restored at
        the end and training stops after ``train.patience`` epochs without improvement.
        Only with ``train.patience=None`` may ``validate`` be left out: then every epoch runs
        (or until ``train.max_seconds``) and the last weights are kept.
        """
        cfg = self.train_config
        if validate is None and cfg.patience is not None:
            raise ConfigError(
                f"{self.name}.fit: train.patience={cfg.patience} needs a validation score: use "
                "recfuse.evaluation.fit_validated(model, split), or pass validate="
                "recfuse.evaluation.validation_score(split, model.train_config); "
                "train.patience=None trains every epoch without model selection"
            )
        super().fit(split)
        seed_everything(cfg.seed)
        self.device_ = resolve_device(cfg.device)
        self.net_ = self.build(split).to(self.device_)
        params = [p for p in self.net_.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        rng = np.random.default_rng(cfg.seed)
        # without patience: select the best epoch but never stop early
        stopping = EarlyStopping(cfg.patience or cfg.epochs + 1, mode="max")
        started = time.perf_counter()
        bar = tqdm(range(cfg.epochs), desc=f"train {self.name}", disable=not cfg.progress)
        for epoch in bar:
            loss = self._train_epoch(split, rng, optimizer)
            row = {"epoch": epoch, "loss": loss}
            if validate is not None:
                self.net_.eval()
                row[cfg.valid_metric] = score = float(validate(self))
                bar.set_postfix(loss=f"{loss:.4f}", valid=f"{score:.4f}")
                stopping.step(score, self.net_)
                if kwargs.get("on_epoch") is not None:
                    kwargs["on_epoch"](epoch, score)  # a search prunes by raising
            self.history_.append(row)
            out_of_time = (
                cfg.max_seconds is not None and time.perf_counter() - started > cfg.max_seconds
            )
            if stopping.should_stop or out_of_time:
                break
        stopping.restore(self.net_)
        self.net_.eval()
        self.best_valid_ = float(stopping.best) if validate is not None else float("nan")
        self.train_seconds_ = time.perf_counter() - started
        if cfg.checkpoint:
            self.save_weights(cfg.checkpoint)
        return self

    def _train_epoch(
        self, split: Split, rng: np.random.Generator, optimizer: torch.optim.Optimizer
    ) -> float:
        """One pass over `batches`; the mean batch loss."""
        self.net_.train()
        total, count = 0.0, 0
        for batch in self.batches(split, rng):
            optimizer.zero_grad(set_to_none=True)
            loss = self.loss(to_device(batch, self.device_))
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            count += 1
        return total / max(count, 1)

    def save_weights(self, path: str | Path) -> None:
        """Network weights alone as one safetensors file (written atomically); `save` writes
        the whole model (params, fingerprint, weights) as a loadable folder."""
        state = {k: v.detach().contiguous() for k, v in self.net_.state_dict().items()}
        with atomic_path(path) as tmp:
            save_file(state, str(tmp))

    def load_weights(self, path: str | Path) -> None:
        self.net_.load_state_dict(load_file(str(path), device=str(self.device)))

    def fitted_tensors(self) -> dict[str, torch.Tensor]:
        return {f"net.{k}": v for k, v in self.net_.state_dict().items()}

    def fitted_meta(self) -> dict[str, Any]:
        return {"history": self.history_, "best_valid": getattr(self, "best_valid_", None)}

    def restore(
        self,
        tensors: dict[str, torch.Tensor],
        meta: dict[str, Any],
        split: Split,
        device: torch.device,
    ) -> None:
        """Rebuild the network for ``split`` and load the saved weights (strictly: all keys)."""
        self.device_ = device  # before build(): a generative model moves its trie there
        self.net_ = self.build(split)
        state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
        self.net_.load_state_dict(state, strict=True)
        self.net_.to(device).eval()
        self.history_ = list(meta.get("history") or [])

    @classmethod
    def from_saved(
        cls, params: dict[str, Any], tensors: dict[str, torch.Tensor], meta: dict[str, Any]
    ) -> TorchRecommender:
        params = dict(params)
        train = TrainConfig(**params.pop("train", {}))
        return cls(train=train, **params, **cls.tensor_arguments(tensors))  # type: ignore[call-arg]

    @classmethod
    def tensor_arguments(cls, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Constructor arguments saved as tensors rather than JSON (a generative model's codes)."""
        return {}

    def init_params(self) -> dict[str, Any]:
        params = super().init_params()
        params["train"] = asdict(self.train_config)
        return params

    @property
    def device(self) -> torch.device:
        """Where the network lives (CPU until `fit` moves it)."""
        return getattr(self, "device_", torch.device("cpu"))

    def get_params(self) -> dict[str, Any]:
        params = {
            k: v for k, v in super().get_params().items() if k not in ("train_config", "history_")
        }
        params["train"] = asdict(self.train_config)
        return params
