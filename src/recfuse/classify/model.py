"""Phase 2 of HiGeMine: a dual-path hierarchical genre classifier in torch.

Blurb path and review path (each a projection of frozen-encoder embeddings) are concatenated into
a book vector h [D]. Per-label classifier vectors W [2 + C, D] come from a GCN over the training
label graph (`graph.LabelGCN`, ML-GCN style) or, for the ablation, are free parameters. Level 1 is
binary (fiction vs non-fiction). Level 2 is multi-label and conditioned on Level 1: each Level 1
branch l has its own feature scaling s_l and per-genre bias c_l, so
    logit_g(x | l) = (h * (1 + s_l)) · W_g + c_{g,l}.
Training feeds the true Level 1 (teacher forcing); prediction is top-down: decide Level 1 at a
validation-tuned threshold, then score genres under that branch. ``hierarchical=False`` drops the
conditioning (flat heads on the same encoder). All thresholds are tuned on the validation part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from recfuse.classify.book_features import BookFeatures
from recfuse.classify.graph import LabelGCN, LabelGraph, build_label_graph, node_labels
from recfuse.classify.thresholds import decide_genres, tune_binary_threshold, tune_genre_thresholds
from recfuse.models.early_stopping import EarlyStopping


@dataclass(frozen=True)
class Targets:
    """Labels of some rows: ``level1`` [N] (0/1) and ``level2`` [N, C] (0/1)."""

    level1: np.ndarray
    level2: np.ndarray

    def take(self, idx: np.ndarray) -> Targets:
        return Targets(self.level1[idx], self.level2[idx])


@dataclass
class Prediction:
    """Probabilities and decisions: ``p1`` [N] P(fiction), ``l1`` [N], ``p2`` [N, C], ``l2`` [N, C]."""

    p1: np.ndarray
    l1: np.ndarray
    p2: np.ndarray
    l2: np.ndarray


@dataclass
class GenreClassifier:
    """Base: subclasses give probabilities; this tunes thresholds on validation and decides.

    `fit` receives the training and validation parts only; `thresholds_l1` / `thresholds_l2` are
    set from validation predictions and never change afterwards.
    """

    single_label: bool = False
    thresholds_l1: float = 0.5
    thresholds_l2: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(
        self, train: BookFeatures, y_train: Targets, valid: BookFeatures, y_valid: Targets
    ) -> GenreClassifier:
        self._fit(train, y_train, valid, y_valid)
        p1, p2_by_branch = self.probabilities(valid)
        self.thresholds_l1 = tune_binary_threshold(p1, y_valid.level1)
        p2 = self._decode_branch(p1 >= self.thresholds_l1, p2_by_branch)
        self.thresholds_l2 = tune_genre_thresholds(p2, y_valid.level2)
        return self

    def predict(self, feats: BookFeatures) -> Prediction:
        p1, p2_by_branch = self.probabilities(feats)
        l1 = (p1 >= self.thresholds_l1).astype(np.int8)
        p2 = self._decode_branch(l1.astype(bool), p2_by_branch)
        return Prediction(p1, l1, p2, decide_genres(p2, self.thresholds_l2, self.single_label))

    @staticmethod
    def _decode_branch(fiction: np.ndarray, p2: np.ndarray) -> np.ndarray:
        """[N, C] genre probabilities under the decided Level 1 branch (flat models: unchanged)."""
        if p2.ndim == 2:
            return p2
        return np.where(fiction[:, None], p2[:, :, 1], p2[:, :, 0])

    def _fit(
        self, train: BookFeatures, y_train: Targets, valid: BookFeatures, y_valid: Targets
    ) -> None:
        raise NotImplementedError

    def probabilities(self, feats: BookFeatures) -> tuple[np.ndarray, np.ndarray]:
        """-> (P(fiction) [N], genre probabilities [N, C] or per branch [N, C, 2])."""
        raise NotImplementedError


class DualPathNet(nn.Module):
    """Blurb path + review path -> Level 1 logit [B] and Level 2 logits [B, C, 2] (or [B, C])."""

    def __init__(
        self,
        d_in: int,
        n_genres: int,
        *,
        hidden: int = 256,
        use_reviews: bool = True,
        hierarchical: bool = True,
        gcn: LabelGCN | None = None,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.use_reviews = use_reviews
        self.hierarchical = hierarchical
        self.blurb_path = nn.Sequential(
            nn.Dropout(0.1), nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout)
        )
        self.review_path = (
            nn.Sequential(nn.Dropout(0.1), nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout))
            if use_reviews else None
        )  # fmt: skip
        dim = hidden * (2 if use_reviews else 1)
        self.gcn = gcn
        self.free_classifiers = (
            None if gcn is not None else nn.Parameter(torch.randn(2 + n_genres, dim) * 0.02)
        )
        self.bias_l1 = nn.Parameter(torch.zeros(1))
        self.bias_l2 = nn.Parameter(torch.zeros(n_genres, 2 if hierarchical else 1))
        self.branch_scale = nn.Parameter(torch.zeros(2, dim)) if hierarchical else None

    def classifiers(self) -> torch.Tensor:
        """[2 + C, D] classifier vectors: Nonfiction, Fiction, genres."""
        if self.gcn is not None:
            return self.gcn()
        assert self.free_classifiers is not None  # built when there is no GCN
        return self.free_classifiers

    def forward(self, blurb: torch.Tensor, reviews: torch.Tensor, has_reviews: torch.Tensor):
        h = self.blurb_path(blurb)  # [B, H]
        if self.review_path is not None:
            h = torch.cat([h, self.review_path(reviews) * has_reviews[:, None]], dim=1)  # [B, 2H]
        w = self.classifiers()
        l1 = h @ (w[1] - w[0]) + self.bias_l1  # [B]
        if not self.hierarchical:
            return l1, h @ w[2:].T + self.bias_l2[:, 0]  # [B, C]
        assert self.branch_scale is not None  # hierarchical models have one
        scaled = h[:, None, :] * (1 + self.branch_scale)[None]  # [B, 2, D]
        l2 = torch.einsum("bld,cd->bcl", scaled, w[2:]) + self.bias_l2[None]  # [B, C, 2]
        return l1, l2


@dataclass
class HiGeMineClassifier(GenreClassifier):
    """The dual-path hierarchical classifier (``graph=True``: GCN classifiers, ML-GCN style).

    ``label_embeddings`` [2 + C, e] embeds the node names (Nonfiction, Fiction, genres) with the
    frozen encoder; needed only with ``graph=True``.
    """

    label_embeddings: np.ndarray | None = None
    graph: bool = True
    hierarchical: bool = True
    use_reviews: bool = True
    hidden: int = 256
    epochs: int = 200
    patience: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    label_graph: LabelGraph | None = None
    net: DualPathNet | None = None

    def _tensors(self, feats: BookFeatures) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            torch.as_tensor(feats.blurb, dtype=torch.float32),
            torch.as_tensor(feats.reviews, dtype=torch.float32),
            torch.as_tensor(feats.review_count > 0, dtype=torch.float32),
        )

    def _loss(
        self, out: tuple[torch.Tensor, torch.Tensor], y1: torch.Tensor, y2: torch.Tensor
    ) -> torch.Tensor:
        l1, l2 = out
        bce = nn.functional.binary_cross_entropy_with_logits
        if self.hierarchical:  # teacher forcing: genres scored under the true branch
            l2 = l2.gather(2, y1.long()[:, None, None].expand(-1, l2.shape[1], 1)).squeeze(2)
        # Genre losses are summed per book (not averaged over C): averaged, 35 rare genres weigh
        # ~1/35 of Level 1 and early stopping fires before Level 2 has learned anything.
        return bce(l1, y1) + bce(l2, y2, reduction="sum") / len(y2)

    def _init_biases(self, y: Targets) -> None:
        """Start every logit at its training log-odds: with 35 rare genres, a zero bias spends
        the first hundreds of steps only pushing all probabilities down."""
        assert self.net is not None

        def log_odds(rate: np.ndarray) -> torch.Tensor:
            rate = np.clip(rate, 1e-3, 1 - 1e-3)
            return torch.as_tensor(np.log(rate / (1 - rate)), dtype=torch.float32)

        with torch.no_grad():
            self.net.bias_l1.copy_(log_odds(np.array([y.level1.mean()])))
            if self.hierarchical:
                for branch in (0, 1):
                    rows = y.level1 == branch
                    rate = y.level2[rows].mean(0) if rows.any() else y.level2.mean(0)
                    self.net.bias_l2[:, branch] = log_odds(rate)
            else:
                self.net.bias_l2[:, 0] = log_odds(y.level2.mean(0))

    def _fit(
        self, train: BookFeatures, y_train: Targets, valid: BookFeatures, y_valid: Targets
    ) -> None:
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        n_genres = y_train.level2.shape[1]
        gcn = None
        if self.graph:
            if self.label_embeddings is None:
                raise ValueError("HiGeMineClassifier(graph=True) needs label_embeddings")
            # The graph sees the training rows' labels and nothing else.
            self.label_graph = build_label_graph(node_labels(y_train.level1, y_train.level2))
            dim = self.hidden * (2 if self.use_reviews else 1)
            gcn = LabelGCN(self.label_embeddings, self.label_graph, dim)
        self.net = DualPathNet(
            train.blurb.shape[1],
            n_genres,
            hidden=self.hidden,
            use_reviews=self.use_reviews,
            hierarchical=self.hierarchical,
            gcn=gcn,
        )
        self._init_biases(y_train)
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        xt, xv = self._tensors(train), self._tensors(valid)
        yt = (
            torch.as_tensor(y_train.level1, dtype=torch.float32),
            torch.as_tensor(y_train.level2, dtype=torch.float32),
        )
        yv = (
            torch.as_tensor(y_valid.level1, dtype=torch.float32),
            torch.as_tensor(y_valid.level2, dtype=torch.float32),
        )
        stopping = EarlyStopping(self.patience, mode="min", min_delta=1e-4)
        for _ in range(self.epochs):
            self.net.train()
            order = rng.permutation(len(train))
            for start in range(0, len(order), self.batch_size):
                idx = torch.as_tensor(order[start : start + self.batch_size])
                loss = self._loss(self.net(*(x[idx] for x in xt)), yt[0][idx], yt[1][idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.net.eval()
            with torch.no_grad():
                valid_loss = float(self._loss(self.net(*xv), *yv))
            if stopping.step(valid_loss, self.net):  # early stopping on the validation loss
                break
        restored = stopping.restore(self.net)
        assert restored, "the validation loss was never finite"
        self.net.eval()

    def probabilities(self, feats: BookFeatures) -> tuple[np.ndarray, np.ndarray]:
        assert self.net is not None, "fit first"
        with torch.no_grad():
            l1, l2 = self.net(*self._tensors(feats))
        return torch.sigmoid(l1).numpy(), torch.sigmoid(l2).numpy()
