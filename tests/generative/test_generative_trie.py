"""The trie decoder only ever emits codes of existing items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recfuse.errors import ConfigError
from recfuse.generative.trie import CodeTrie, constrained_beam_search


def sparse_codes(n_items: int = 300, levels: int = 4, size: int = 8) -> np.ndarray:
    """Distinct random codes that fill only n_items of the size**levels code space."""
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, size, (3 * n_items, levels)), axis=0)
    return codes[rng.permutation(len(codes))[:n_items]]


def random_step(sizes: np.ndarray, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)

    def step(codes: torch.Tensor) -> torch.Tensor:
        b, w, level = codes.shape
        logits = torch.randn(b, w, int(sizes[level]), generator=generator) * 3
        return logits.log_softmax(-1)

    return step


def test_constrained_beams_are_always_items() -> None:
    codes = sparse_codes()
    trie = CodeTrie(codes)
    result = constrained_beam_search(random_step(trie.sizes), trie, batch_size=64, beam=25)
    assert result.items.shape == (64, 25)
    assert (result.items >= 0).all(), "every beam must end on an item"
    assert torch.isfinite(result.scores).all()
    # the emitted code is exactly the item's code, and each user gets distinct items
    emitted = result.codes.numpy()
    np.testing.assert_array_equal(emitted, codes[result.items.numpy()])
    for row in result.items.numpy():
        assert len(set(row.tolist())) == len(row)
    # beams come out best first
    assert (result.scores[:, :-1] >= result.scores[:, 1:]).all()


def test_without_the_trie_the_same_model_emits_non_items() -> None:
    """The check above can fail: unconstrained decoding of the same model hits codes of no item."""
    trie = CodeTrie(sparse_codes())
    result = constrained_beam_search(
        random_step(trie.sizes), trie, batch_size=64, beam=25, constrained=False
    )
    invalid = [tuple(c) not in trie for c in result.codes.reshape(-1, trie.levels).tolist()]
    assert np.mean(invalid) > 0.5
    assert (result.items[torch.as_tensor(invalid).view(64, 25)] == -1).all()


def test_beam_wider_than_catalogue_marks_missing_items() -> None:
    codes = np.array([[0, 0], [0, 1], [1, 0]])
    trie = CodeTrie(codes)
    result = constrained_beam_search(random_step(trie.sizes), trie, batch_size=2, beam=5)
    found = result.items[result.items >= 0].view(2, -1)
    assert found.shape[1] == 3
    assert sorted(found[0].tolist()) == [0, 1, 2]
    assert torch.isinf(result.scores[result.items < 0]).all()


def test_trie_refuses_duplicate_codes() -> None:
    with pytest.raises(ConfigError, match="not unique"):
        CodeTrie(np.array([[0, 1], [0, 1]]))
