"""One small learner for every probe: an MLP whose first layer reads a CSR row directly.

The first layer is an `EmbeddingBag` in sum mode with the CSR values as per-sample weights, which
equals a dense linear layer but costs only the row's non-zeros (≈50 of 2,048 fingerprint bits).
Training uses early stopping on the validation rows only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recfuse.audit.table import Task
from recfuse.models.early_stopping import EarlyStopping


@dataclass(frozen=True)
class NetConfig:
    """Hyperparameters (fixed, not tuned on test): small enough for one CPU core."""

    hidden: int = 256
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2
    patience: int = 3


class SparseMLP(nn.Module):
    """CSR rows [B, n_in] → ReLU(hidden) → outputs [B, n_out]."""

    def __init__(self, n_in: int, n_out: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.n_out = n_out
        self.embed = nn.EmbeddingBag(n_in, hidden, mode="sum")
        nn.init.normal_(self.embed.weight, std=0.05)
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        indices, offsets, weights = batch
        hidden = self.embed(indices, offsets, per_sample_weights=weights) + self.bias
        return self.head(hidden)


def _tensors(x: sp.csr_matrix, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    sub = x[rows]
    return (
        torch.from_numpy(sub.indices.astype(np.int64)),
        torch.from_numpy(sub.indptr[:-1].astype(np.int64)),
        torch.from_numpy(sub.data.astype(np.float32)),
    )


@dataclass
class FittedNetwork:
    """A trained `SparseMLP` plus what is needed to undo the target scaling."""

    model: SparseMLP
    task: Task
    y_mean: float = 0.0
    y_std: float = 1.0
    epochs_run: int = 0

    def predict(self, x: sp.csr_matrix, rows: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Class probabilities [len(rows), n_out] (classification) or values [len(rows)]."""
        self.model.eval()
        outs = []
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                out = self.model(_tensors(x, rows[start : start + batch_size]))
                outs.append(torch.softmax(out, -1) if self.task == "classification" else out[:, 0])
        if not outs:
            width = self.model.n_out
            return np.zeros((0, width) if self.task == "classification" else 0, np.float32)
        pred = torch.cat(outs).numpy()
        return pred if self.task == "classification" else pred * self.y_std + self.y_mean


def fit_network(
    x: sp.csr_matrix,
    y: np.ndarray,
    task: Task,
    train_rows: np.ndarray,
    valid_rows: np.ndarray,
    n_out: int,
    seed: int,
    config: NetConfig = NetConfig(),
) -> FittedNetwork:
    """Fit on ``train_rows`` of (x [n, d] CSR, y [n]); stop early on ``valid_rows`` loss.

    ``y`` holds class codes in [0, n_out) for classification and floats for regression (scaled
    by the training rows' mean and standard deviation).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SparseMLP(
        x.shape[1], n_out if task == "classification" else 1, config.hidden, config.dropout
    )
    fitted = FittedNetwork(model, task)
    if task == "regression":
        fitted.y_mean = float(np.mean(y[train_rows]))
        fitted.y_std = float(np.std(y[train_rows]) or 1.0)
        target = torch.from_numpy(((y - fitted.y_mean) / fitted.y_std).astype(np.float32))
        loss_fn: nn.Module = nn.MSELoss()
    else:
        target = torch.from_numpy(np.asarray(y, dtype=np.int64))
        loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )

    def loss_on(rows: np.ndarray) -> torch.Tensor:
        out = model(_tensors(x, rows))
        return loss_fn(out[:, 0] if task == "regression" else out, target[rows])

    stopping = EarlyStopping(config.patience, mode="min", min_delta=1e-4)
    for epoch in range(config.epochs):
        model.train()
        order = rng.permutation(train_rows)
        for start in range(0, len(order), config.batch_size):
            optimizer.zero_grad()
            loss_on(order[start : start + config.batch_size]).backward()
            optimizer.step()
        fitted.epochs_run = epoch + 1
        if len(valid_rows) == 0:
            continue
        model.eval()
        with torch.inference_mode():
            valid_loss = float(loss_on(valid_rows))
        if stopping.step(valid_loss, model):
            break
    stopping.restore(model)
    return fitted
