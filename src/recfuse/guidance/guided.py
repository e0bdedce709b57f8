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
from recfuse.models.sequential import SASRec, SequentialRecommender, left_pad, window_ends
from recfuse.models.training import TorchRecommender, Validate
from recfuse.split import Split


@dataclass
class Guidance:
    """What the auxiliary loss needs: pairs [n] (user, pos, neg), teacher p(pos > neg), gate
    weights g in [0, 1], lambda, the prefix histories, and the loss form.

    Pairs are grouped by user (each user's pairs share pos), so a training step draws users and
    runs the backbone once per drawn user for all of that user's pairs.
    """

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
        self.groups = self._group()
        self.per_step = len(self.groups[0])

    def _group(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """users [U]; candidates [U, 1 + C] (pos first); p, g and mask [U, C] per negative."""
        order = np.argsort(self.users, kind="stable")
        users, bounds = np.unique(self.users[order], return_index=True)
        ends = np.append(bounds[1:], len(order))
        width = int((ends - bounds).max()) if len(users) else 0
        cands = np.zeros((len(users), width + 1), dtype=np.int64)
        p, g = np.full((len(users), width), 0.5), np.zeros((len(users), width))
        mask = np.zeros((len(users), width), dtype=bool)
        for row, (lo, hi) in enumerate(zip(bounds, ends, strict=True)):
            idx = order[lo:hi]
            if not (self.pos[idx] == self.pos[idx[0]]).all():
                raise ConfigError(f"guidance: user {users[row]} has pairs with different pos")
            cands[row, 0] = self.pos[idx[0]]
            cands[row, 1 : 1 + len(idx)] = self.neg[idx]
            p[row, : len(idx)], g[row, : len(idx)] = self.p[idx], self.g[idx]
            mask[row, : len(idx)] = True
        return users, cands, p, g, mask


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

    def fit(self, split: Split, validate: Validate | None = None, **kwargs: Any) -> Any:
        if self.guidance is not None:
            # one pass over the guidance pairs per epoch, spread over the backbone's steps
            steps = _steps_per_epoch(self, split)  # type: ignore[arg-type]
            units = len(self.guidance.groups[0])
            self.guidance.per_step = max(1, -(-units // max(steps, 1)))
            self.__dict__.pop("_windows", None)  # windows are cut from this split
        return super().fit(split, validate, **kwargs)  # type: ignore[misc]

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
        stride = model.training_stride()
        rows = sum(
            len(window_ends(len(h), stride)) for h in split.histories("valid") if len(h) >= 2
        )
    else:
        rows = len(split.train)
    return max(1, -(-rows // model.train_config.batch_size))


def guidance_loss(model: TorchRecommender, g: Guidance) -> torch.Tensor:
    """The auxiliary term for one training step, over a random draw of users.

    ``pairwise``: mean over the drawn pairs of g · BCE(sigmoid(s_pos − s_neg), p).
    ``listwise``: cross-entropy of the student's softmax over each user's candidates against
    the teacher's Bradley–Terry distribution (logit 0 for pos, −logit p for each negative).
    """
    dev = model.device
    users, cands, p, gate, mask = g.groups
    k = g._rng.choice(len(users), size=min(g.per_step, len(users)), replace=False)
    s = pair_scores(
        model, torch.as_tensor(users[k], device=dev), torch.as_tensor(cands[k], device=dev)
    )
    pt = torch.as_tensor(p[k], dtype=s.dtype, device=dev)
    m = torch.as_tensor(mask[k], device=dev)
    if g.form == "pairwise":
        w = torch.as_tensor(gate[k], dtype=s.dtype, device=dev) * m
        bce = F.binary_cross_entropy_with_logits(s[:, :1] - s[:, 1:], pt, reduction="none")
        return (w * bce).sum() / m.sum().clamp(min=1)
    q = pt.clamp(1e-4, 1 - 1e-4)
    t = torch.cat([torch.zeros_like(q[:, :1]), -torch.log(q / (1 - q))], dim=1)
    full = torch.cat([torch.ones_like(m[:, :1]), m], dim=1)
    teacher = torch.softmax((t / g.temperature).masked_fill(~full, -torch.inf), dim=1)
    student = torch.log_softmax(s.masked_fill(~full, -torch.inf), dim=1).masked_fill(~full, 0.0)
    return -(teacher * student).sum(1).mean()


class GuidedBPR(GuidedMixin, BPR):
    """BPR-MF, unchanged, plus the guidance term."""


class GuidedSASRec(GuidedMixin, SASRec):
    """SASRec, unchanged, plus the guidance term."""


BACKBONES: dict[str, type[TorchRecommender]] = {"bpr": GuidedBPR, "sasrec": GuidedSASRec}


@torch.no_grad()
def pair_accuracy(
    model: TorchRecommender,
    users: np.ndarray,
    pos: np.ndarray,
    neg: np.ndarray,
    prefixes: Sequence[np.ndarray],
) -> float:
    """Share of pairs the trained model orders pos above neg (prefix state; ties count wrong)."""
    if not len(users):
        return float("nan")
    if isinstance(model, SequentialRecommender) and not hasattr(model, "_guidance_seqs"):
        pad = left_pad(list(prefixes), model.max_len, model.n_items_)
        model._guidance_seqs = torch.as_tensor(pad)  # type: ignore[attr-defined]
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
