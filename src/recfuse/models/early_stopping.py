"""The one early-stopping rule: patience on a validation score, best weights kept and restored.

Every training loop with patience uses it — `TorchRecommender` (validation NDCG@10, higher is
better), the HiGeMine classifier and the leakage audit's learners (validation loss, lower is
better) — so "best", "patience" and "restore" mean the same thing everywhere.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import torch


class EarlyStopping:
    """Track a validation score per epoch; say when ``patience`` epochs in a row did not improve.

    An epoch improves when its score beats the best so far by more than ``min_delta``
    (``mode="max"``: higher is better; ``"min"``: lower is better). A NaN score never improves.
    On every improvement a deep copy of the module's ``state_dict`` is kept; `restore` loads it.

    Usage::

        stop = EarlyStopping(patience=5, mode="max")
        for epoch in range(epochs):
            train_one_epoch()
            if stop.step(validation_score(), net):
                break
        stop.restore(net)
    """

    def __init__(
        self, patience: int, mode: Literal["max", "min"] = "max", min_delta: float = 0.0
    ) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.patience = patience
        self.mode = mode
        self.min_delta = min_delta
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch = -1
        self.best_state: dict[str, Any] | None = None
        self.bad_epochs = 0
        self.epochs = 0

    def improved(self, score: float) -> bool:
        """Whether ``score`` beats the best so far by more than ``min_delta``."""
        if self.mode == "max":
            return score > self.best + self.min_delta
        return score < self.best - self.min_delta

    def step(self, score: float, module: torch.nn.Module | None = None) -> bool:
        """Record one epoch's score (keeping ``module``'s weights if it is the best); return
        True when training should stop (``patience`` epochs without improvement)."""
        if self.improved(score):
            self.best, self.best_epoch, self.bad_epochs = float(score), self.epochs, 0
            if module is not None:
                self.best_state = copy.deepcopy(module.state_dict())
        else:
            self.bad_epochs += 1
        self.epochs += 1
        return self.bad_epochs >= self.patience

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def restore(self, module: torch.nn.Module) -> bool:
        """Load the best weights into ``module``; False (module untouched) if none was kept."""
        if self.best_state is None:
            return False
        module.load_state_dict(self.best_state)
        return True
