"""The SmolLM2 LoRA stage runs on a CPU on a tiny subset; the code tokens are real tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from generative_synthetic import chain_split

from recfuse.generative.lm_stage import CodeLM, LMStageConfig, code_token
from recfuse.generative.semantic_ids import random_semantic_ids


@pytest.mark.slow
def test_lora_stage_runs_two_steps_and_generates_items() -> None:
    split = chain_split(n_users=20, n_items=12, length=6)
    ids = random_semantic_ids(split.n_items, levels=2, codebook_size=4, seed=0)
    cfg = LMStageConfig(steps=2, batch_size=2, max_users=4, max_items=3, device="cpu")
    model = CodeLM(ids.codes, cfg)
    tok = model.tokenizer
    # every code of every level is one new token of the tokenizer
    for level, size in enumerate(model.trie.sizes):
        for code in range(int(size)):
            text = code_token(level, code)
            ids_ = tok(text, add_special_tokens=False)["input_ids"]
            assert len(ids_) == 1 and ids_[0] in model.new_token_ids_
    assert len(model.new_token_ids_) == int(model.trie.sizes.sum())
    before = {n: p.detach().clone() for n, p in model.model.named_parameters() if p.requires_grad}
    model.fit(split)
    assert len(cfg.losses) == 2 and all(np.isfinite(cfg.losses))
    trainable, total = model.trainable_parameters()
    assert 0 < trainable < 0.05 * total  # LoRA + new token rows only
    changed = [n for n, p in model.model.named_parameters() if p.requires_grad]
    assert any(not torch.equal(before[n], dict(model.model.named_parameters())[n]) for n in changed)
    histories = split.histories("test")[:2]
    result = model.generate(histories, beam=4)
    assert (result.items >= 0).all()
    np.testing.assert_array_equal(result.codes.numpy(), ids.codes[result.items.numpy()])
