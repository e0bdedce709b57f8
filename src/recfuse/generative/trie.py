"""A prefix trie over the catalogue's codes, and beam search that can only end on real items.

Generative recommenders emit an item as a short code (one token per level). An unconstrained
decoder can emit a code that no item has; TIGER's reproductions report a noticeable share of such
"hallucinated" codes. Here every decoding step masks the tokens that do not continue a prefix of
some item's code, so each finished beam is an existing item by construction.

The trie is stored level by level as dense tables ``children[t]: [n_prefixes_t, K_t]`` holding the
id of the child prefix (or -1), so one beam step for the whole batch is a single gather.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from recfuse.errors import ConfigError

#: step function: generated codes so far [B, W, t] -> log-probabilities of level t's codes
#: [B, W, K_t] (W is the current beam width: 1 at the first step)
StepFn = Callable[[torch.Tensor], torch.Tensor]


class CodeTrie:
    """Prefix trie of item codes.

    Args:
        codes: int array [n_items, L]; each row is one item's code, all rows distinct.
    Attributes:
        sizes: codes per level, ``codes.max(0) + 1``, [L].
        children: per level t, long tensor [n_prefixes_t, sizes[t]] -> child prefix id or -1.
        leaf_item: long tensor [n_items]; maps a full-code prefix id to its item index.
    """

    def __init__(self, codes: np.ndarray) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[0] == 0:
            raise ConfigError(f"codes must be a non-empty [n_items, L] array, got {codes.shape}")
        if (codes < 0).any():
            raise ConfigError("codes must be non-negative")
        if len(np.unique(codes, axis=0)) != len(codes):
            raise ConfigError("codes are not unique per item: resolve collisions first")
        self.codes = codes
        self.levels = codes.shape[1]
        self.sizes = codes.max(0) + 1
        prefix = np.zeros(len(codes), dtype=np.int64)  # every item starts at the root (id 0)
        n_prefixes = 1
        self.children: list[torch.Tensor] = []
        for t in range(self.levels):
            pairs = prefix * int(self.sizes[t]) + codes[:, t]
            unique_pairs, child = np.unique(pairs, return_inverse=True)
            table = np.full((n_prefixes, int(self.sizes[t])), -1, dtype=np.int64)
            table[unique_pairs // self.sizes[t], unique_pairs % self.sizes[t]] = np.arange(
                len(unique_pairs)
            )
            self.children.append(torch.as_tensor(table))
            prefix, n_prefixes = child.reshape(-1), len(unique_pairs)
        leaf_item = np.empty(len(codes), dtype=np.int64)
        leaf_item[prefix] = np.arange(len(codes))
        self.leaf_item = torch.as_tensor(leaf_item)
        self._known = {tuple(row) for row in codes.tolist()}

    def to(self, device: str | torch.device) -> CodeTrie:
        """Move the lookup tables to ``device`` (in place); returns self."""
        self.children = [table.to(device) for table in self.children]
        self.leaf_item = self.leaf_item.to(device)
        return self

    def __contains__(self, code: tuple[int, ...]) -> bool:
        return tuple(int(c) for c in code) in self._known

    def allowed(self, level: int, prefix_ids: torch.Tensor) -> torch.Tensor:
        """Bool mask [..., K_level] of the codes that continue each prefix."""
        return self.children[level][prefix_ids] >= 0


@dataclass
class BeamResult:
    """Finished beams: ``items`` [B, W] (-1 where fewer than W items exist), ``scores`` [B, W]
    summed log-probabilities (-inf for the missing ones), ``codes`` [B, W, L]."""

    items: torch.Tensor
    scores: torch.Tensor
    codes: torch.Tensor


@torch.no_grad()
def constrained_beam_search(
    step: StepFn, trie: CodeTrie, batch_size: int, beam: int, constrained: bool = True
) -> BeamResult:
    """Beam search over codes, level by level, keeping only prefixes of existing items.

    Args:
        step: the model; see `StepFn`.
        trie: the catalogue's codes.
        batch_size: number of users B.
        beam: beam width W (the number of items returned per user).
        constrained: False turns the trie mask off (only to show what it prevents).
    """
    device = trie.leaf_item.device
    prefix = torch.zeros(batch_size, 1, dtype=torch.long, device=device)
    scores = torch.zeros(batch_size, 1, device=device)
    codes = torch.zeros(batch_size, 1, 0, dtype=torch.long, device=device)
    alive = torch.ones(batch_size, 1, dtype=torch.bool, device=device)
    for level in range(trie.levels):
        size = int(trie.sizes[level])
        logp = step(codes).float()  # [B, W, K]
        if logp.shape[-1] != size:
            raise ConfigError(f"step returned {logp.shape[-1]} codes at level {level}, not {size}")
        if constrained:
            logp = logp.masked_fill(~trie.allowed(level, prefix), -torch.inf)
        candidates = (scores.unsqueeze(-1) + logp).masked_fill(~alive.unsqueeze(-1), -torch.inf)
        width = min(beam, candidates.shape[1] * size)
        scores, flat = candidates.flatten(1).topk(width, dim=1)  # [B, W']
        parent, code = flat // size, flat % size
        alive = torch.isfinite(scores)
        child = trie.children[level][prefix.gather(1, parent), code]
        # a dead beam (fewer valid continuations than W) or an unconstrained off-trie code has
        # no child; park it on prefix 0 and keep it marked dead
        alive &= child >= 0
        prefix = child.clamp(min=0)
        codes = torch.cat(
            [codes.gather(1, parent.unsqueeze(-1).expand(-1, -1, level)), code.unsqueeze(-1)], -1
        )
    items = torch.where(alive, trie.leaf_item[prefix], torch.full_like(prefix, -1))
    scores = scores.masked_fill(~alive, -torch.inf)
    return BeamResult(items=items, scores=scores, codes=codes)
