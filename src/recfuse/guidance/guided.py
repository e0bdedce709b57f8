"""The auxiliary guidance loss, added to a backbone's own loss without changing the backbone.

`GuidedBPR` and `GuidedSASRec` are the unchanged backbones with one override: ``loss(batch)``
returns the backbone's loss plus ``lambda · mean_k g_k · BCE(sigmoid(s_pos − s_neg), p_k)`` over
a random draw of guidance pairs (``pairwise``), or ``lambda · KL(teacher ‖ student)`` over each
drawn user's candidate list (``listwise``: global KD, every pair at weight 1). One pass over the
guidance pairs per epoch. Scores s are the backbone's own: the user vector for BPR, the hidden
state after the user's prefix history for a sequential model. `score` is not overridden, so
inference costs exactly what the backbone costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from recfuse.errors import ConfigError
from recfuse.models.bpr import BPR
from recfuse.models.sequential import SASRec, SequentialRecommender, left_pad
from recfuse.models.training import TorchRecommender
from recfuse.split import Split


@dataclass
class Guidance:
    """What the auxiliary loss needs: pairs [n] (user, pos, neg), teacher p(pos > neg), gate
    weights g in [0, 1], lambda, the prefix histories, and the loss form."""

    users: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    p: np.ndarray
    g: np.ndarray
    lam: float
    prefixes: Sequence[np.ndarray]
    form: Literal["pairwise", "listwise"] = "pairwise"
    temperature: float = 1.0
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.form not in ("pairwise", "listwise"):
            raise ConfigError(f"guidance form {self.form!r}: pairwise or listwise")
        self._rng = np.random.default_rng(self.seed + 7919)
        self.per_step = max(1, len(self.users))

    def listwise_groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per user with pairs: candidates [U, C] (pos first), teacher logits [U, C], mask."""
        order = np.argsort(self.users, kind="stable")
        users, bounds = np.unique(self.users[order], return_index=True)
        width = int(np.diff(np.append(bounds, len(order))).max()) + 1
        cands = np.zeros((len(users), width), dtype=np.int64)
        logits = np.full((len(users), width), -np.inf)
        for row, (lo, hi) in enumerate(zip(bounds, np.append(bounds[1:], len(order)), strict=True)):
            idx = order[lo:hi]
            cands[row, 0], logits[row, 0] = self.pos[idx[0]], 0.0
            cands[row, 1 : 1 + len(idx)] = self.neg[idx]
            q = np.clip(self.p[idx], 1e-4, 1 - 1e-4)
            logits[row, 1 : 1 + len(idx)] = -np.log(q / (1 - q))  # Bradley-Terry: s_j − s_pos
        return users, cands, logits


def pair_scores(model: TorchRecommender, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Differentiable scores of ``items`` [B, C] for ``users`` [B] (prefix state): [B, C]."""
    if isinstance(model, BPR):
        u = model.net_.users(users)
        return (u.unsqueeze(1) * model.net_.items(items)).sum(-1)
    if isinstance(model, SequentialRecommender):
        seq = model._guidance_seqs[users]  # type: ignore[attr-defined]
        table = model.item_table()
        hidden = model.net_(seq, table)[:, -1]
        return (hidden.unsqueeze(1) * table[items]).sum(-1)
    raise ConfigError(f"guidance: no pair scores for {type(model).__name__}")


class GuidedMixin:
    """Adds the guidance term to ``loss``; set ``guidance`` before ``fit`` (None = plain)."""

    guidance: Guidance | None = None

    def fit(self, split: Split, **kwargs: Any) -> Any:
        if self.guidance is not None:
            # one pass over the guidance pairs per epoch, spread over the backbone's steps
            steps = _steps_per_epoch(self, split)  # type: ignore[arg-type]
            units = (
                len(np.unique(self.guidance.users))
                if self.guidance.form == "listwise"
                else len(self.guidance.users)
            )
            self.guidance.per_step = max(1, -(-units // max(steps, 1)))
            self.__dict__.pop("_train_seqs", None)
        return super().fit(split, **kwargs)  # type: ignore[misc]

    def build(self, split: Split) -> torch.nn.Module:
        net = super().build(split)  # type: ignore[misc]
        if self.guidance is not None and isinstance(self, SequentialRecommender):
            pad = left_pad(list(self.guidance.prefixes), self.max_len, split.n_items)
            self._guidance_seqs = torch.as_tensor(pad)
        return net

    def loss(self, batch: Any) -> torch.Tensor:
        base = super().loss(batch)  # type: ignore[misc]
        if self.guidance is None or self.guidance.lam == 0:
            return base
        return base + self.guidance.lam * guidance_loss(self, self.guidance)  # type: ignore[arg-type]


def _steps_per_epoch(model: TorchRecommender, split: Split) -> int:
    """Training steps in one epoch of the backbone (its own batching, counted not run)."""
    if isinstance(model, SequentialRecommender):
        rows = sum(1 for h in split.histories("valid") if len(h) >= 2)
    else:
        rows = len(split.train)
    return max(1, -(-rows // model.train_config.batch_size))


def guidance_loss(model: TorchRecommender, g: Guidance) -> torch.Tensor:
    """The auxiliary term for one training step (a random draw of pairs or users)."""
    dev = model.device
    if g.form == "pairwise":
        k = g._rng.choice(len(g.users), size=min(g.per_step, len(g.users)), replace=False)
        users = torch.as_tensor(g.users[k], device=dev)
        items = torch.as_tensor(np.stack([g.pos[k], g.neg[k]], 1), device=dev)
        s = pair_scores(model, users, items)
        target = torch.as_tensor(g.p[k], dtype=s.dtype, device=dev)
        weight = torch.as_tensor(g.g[k], dtype=s.dtype, device=dev)
        bce = F.binary_cross_entropy_with_logits(s[:, 0] - s[:, 1], target, reduction="none")
        return (weight * bce).mean()
    if not hasattr(g, "_groups"):
        g._groups = g.listwise_groups()  # type: ignore[attr-defined]
    users_all, cands, logits = g._groups  # type: ignore[attr-defined]
    k = g._rng.choice(len(users_all), size=min(g.per_step, len(users_all)), replace=False)
    s = pair_scores(
        model, torch.as_tensor(users_all[k], device=dev), torch.as_tensor(cands[k], device=dev)
    )
    t = torch.as_tensor(logits[k], dtype=s.dtype, device=dev)
    mask = torch.isfinite(t)
    teacher = torch.softmax(t / g.temperature, dim=1)
    student = torch.log_softmax(s.masked_fill(~mask, -1e9), dim=1)
    return -(teacher * student.masked_fill(~mask, 0.0)).sum(1).mean()


class GuidedBPR(GuidedMixin, BPR):
    """BPR-MF, unchanged, plus the guidance term."""


class GuidedSASRec(GuidedMixin, SASRec):
    """SASRec, unchanged, plus the guidance term."""


BACKBONES: dict[str, type[TorchRecommender]] = {"bpr": GuidedBPR, "sasrec": GuidedSASRec}


@torch.no_grad()
def pair_accuracy(
    model: TorchRecommender, users: np.ndarray, pos: np.ndarray, neg: np.ndarray
) -> float:
    """Share of pairs the trained model orders pos above neg (prefix state; ties count wrong)."""
    if not len(users):
        return float("nan")
    model.net_.eval()
    correct = 0
    for lo in range(0, len(users), 4096):
        u = torch.as_tensor(users[lo : lo + 4096], device=model.device)
        items = torch.as_tensor(
            np.stack([pos[lo : lo + 4096], neg[lo : lo + 4096]], 1), device=model.device
        )
        s = pair_scores(model, u, items)
        correct += int((s[:, 0] > s[:, 1]).sum())
    return correct / len(users)
