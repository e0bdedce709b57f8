"""Issue 23: the attention mask, sliding training windows and the EASE fast path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recfuse.data import load_dataset
from recfuse.errors import ConfigError
from recfuse.models import EASE, SASRec
from recfuse.models.item_encoders import IdEncoder
from recfuse.models.sasrec import SASRecNet
from recfuse.models.sequential import training_windows
from recfuse.models.transformer import Block, attention_mask
from recfuse.split import make_split


@pytest.fixture(scope="module")
def ml100k():  # type: ignore[no-untyped-def]
    return make_split(load_dataset("ml-100k"), "leave_one_out")


def _left_padded_mask() -> torch.Tensor:
    """Rows with 0, 3, 7 and 8 pads on the left (the last row is all padding)."""
    key_ok = torch.ones(4, 8, dtype=torch.bool)
    for row, pads in enumerate((0, 3, 7, 8)):
        key_ok[row, :pads] = False
    return key_ok


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_pad_positions_receive_no_attention_weight(norm: str) -> None:
    torch.manual_seed(0)
    block = Block(16, 2, 0.0, ffn=32, norm=norm).eval()
    key_ok = _left_padded_mask()
    x = torch.randn(4, 8, 16)
    noisy = x.clone()
    noisy[~key_ok] = 100 * torch.randn(int((~key_ok).sum()), 16)
    # whatever sits at the pad positions (their keys and values), real positions see none of it
    out, _ = block(x, key_ok)
    out_noisy, _ = block(noisy, key_ok)
    assert torch.allclose(out[key_ok], out_noisy[key_ok], atol=1e-5)
    assert not torch.allclose(out[~key_ok], out_noisy[~key_ok])  # the noise did reach the pads
    mask = attention_mask(key_ok)[:, 0]  # [B, query, key]
    real_query_pad_key = key_ok[:, :, None] & ~key_ok[:, None, :]
    assert not mask[real_query_pad_key].any()
    assert torch.isfinite(out).all()  # the all-pad row attends to itself, not to nothing


def test_sasrec_hidden_states_ignore_what_pads_hold() -> None:
    torch.manual_seed(0)
    net = SASRecNet(IdEncoder(30, 16), max_len=8, dropout=0.0).eval()
    table = torch.cat([net.encoder(), torch.zeros(1, 16)])
    seq = torch.tensor([[30, 30, 30, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        clean = net(seq, table)

        def noise_at_pads(_: torch.nn.Module, args: tuple) -> tuple:  # type: ignore[type-arg]
            x, key_ok = args
            return x + 50 * torch.randn_like(x) * ~key_ok[..., None], key_ok

        hook = net.blocks[0].register_forward_pre_hook(noise_at_pads)
        noisy = net(seq, table)
        hook.remove()
    assert torch.allclose(clean[0, 3:], noisy[0, 3:], atol=1e-5)
    assert not torch.allclose(clean[0, :3], noisy[0, :3])


@pytest.mark.parametrize("stride", [50, 20, 1])
def test_sliding_windows_cover_every_target_once(stride: int) -> None:
    lengths = [2, 5, 50, 51, 52, 101, 137]
    seqs = [np.arange(n) for n in lengths]  # item = position, so targets name their position
    pad = 10_000
    rows, inputs, targets = training_windows(seqs, 50, pad, stride)
    for row, n in enumerate(lengths):
        kept = targets[rows == row]
        kept = kept[kept != pad]
        assert sorted(kept.tolist()) == list(range(1, n))  # every target, exactly once
    real = targets != pad
    assert (inputs[real] == targets[real] - 1).all()  # each target predicted from its predecessor
    context = np.cumsum(inputs != pad, axis=1)[real]  # items the prediction sees
    assert (context >= np.minimum(targets[real], 50 - stride + 1)).all()


def test_last_window_mode_is_one_window_per_user() -> None:
    seqs = [np.arange(n) for n in (2, 60)]
    rows, _, targets = training_windows(seqs, 50, 10_000, None)
    assert rows.tolist() == [0, 1]
    assert sorted(targets[1][targets[1] != 10_000].tolist()) == list(range(10, 60))
    with pytest.raises(ConfigError, match="stride"):
        training_windows(seqs, 50, 10_000, 51)
    with pytest.raises(ConfigError, match="windows"):
        SASRec(windows="all")


def test_sliding_windows_hold_only_training_items(ml100k) -> None:  # type: ignore[no-untyped-def]
    split = ml100k
    train = split.histories("valid")
    rows, inputs, targets = training_windows(train, 50, split.n_items, 20)
    assert len(rows) > split.n_users  # long histories were cut into several windows
    for row, x, y in zip(rows, inputs, targets, strict=True):
        window = np.concatenate([x[x < split.n_items], y[-1:]])
        hist = train[row]
        start = int(np.flatnonzero(hist == window[0])[0])
        # a contiguous stretch of the training history, never the valid/test item
        assert np.array_equal(hist[start : start + len(window)], window)
    # the model trains on exactly these windows (the same rows, in some order)
    model = SASRec(max_len=50, windows="sliding", stride=20, batch_size=4096)
    seen = [torch.cat([x, y], 1) for x, y in model.batches(split, np.random.default_rng(0))]
    mine = {row.tobytes() for row in np.concatenate([inputs, targets], 1)}
    theirs = [row.numpy().tobytes() for row in torch.cat(seen)]
    assert len(theirs) == len(rows) and set(theirs) == mine


def _gather_scores(b: torch.Tensor, histories: list[np.ndarray]) -> np.ndarray:
    """EASE scoring as commit a53f9a8 did it: index_add of B's rows."""
    histories = [np.unique(h) for h in histories]
    lengths = [len(h) for h in histories]
    rows = torch.as_tensor(np.repeat(np.arange(len(histories)), lengths))
    out = torch.zeros(len(histories), b.shape[0])
    out.index_add_(0, rows, b[torch.as_tensor(np.concatenate(histories))])
    return out.numpy()


def test_ease_fast_path_gives_exactly_the_old_scores(ml100k) -> None:  # type: ignore[no-untyped-def]
    model = EASE().fit(ml100k)
    histories = ml100k.histories("test")[:300]
    users = np.arange(300)
    assert np.array_equal(model.score(users, histories), _gather_scores(model.b_, histories))
