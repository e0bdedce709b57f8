"""The keyword LM: training prompts read training interactions only; LoRA training lowers the
loss and its adapter saves and loads; candidate scores agree with the training loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recfuse.errors import LeakageError
from recfuse.generative.keyword_lm import KeywordLM, KeywordLMConfig, KeywordPrompts
from recfuse.generative.lora import (
    LoRAConfig,
    load_adapter,
    save_adapter,
    target_loss,
    train_lora,
    wrap_lora,
)
from recfuse.knowledge.keywords_context import CollaborativeKeywords
from recfuse.llm.leakage import check_pairs_in_train
from recfuse.split import Split, make_split


@pytest.fixture(scope="module")
def split() -> Split:
    from recfuse.data import load_dataset

    return make_split(load_dataset("ml-100k"), "leave_one_out", 0)


def without_future(split: Split) -> Split:
    """The same split with its valid and test interactions deleted."""
    empty = split.train.iloc[:0]
    return Split(
        split.protocol, split.seed, split.n_users, split.n_items, split.train, empty, empty
    )


def test_training_prompts_hold_no_valid_or_test_information(split: Split) -> None:
    keywords = [f"kw{i}" for i in range(split.n_items)]
    texts = [f"item {i}" for i in range(split.n_items)]

    def examples(s: Split) -> tuple[list[tuple[str, str]], list[tuple[int, int]]]:
        prompts = KeywordPrompts(keywords, texts, 5, CollaborativeKeywords(s, keywords))
        return prompts.examples(s, 300, 0.25, np.random.default_rng(0))

    pairs, seen = examples(split)
    assert len(pairs) == 375 and "<<<DATA collab" in pairs[0][0]
    check_pairs_in_train(split, seen)  # every history and target item is a training pair
    # deleting every valid and test interaction changes no prompt, context or target
    assert examples(without_future(split)) == (pairs, seen)
    test_pair = split.test.iloc[0]
    with pytest.raises(LeakageError):  # the guard does fire on a test interaction
        check_pairs_in_train(split, [*seen, (int(test_pair["user"]), int(test_pair["item"]))])


@pytest.mark.slow
def test_lora_lowers_the_loss_and_the_adapter_round_trips(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recfuse.frozen import locate_model, model_folder

    folder = model_folder(locate_model("smollm2"))
    tok = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    cfg = LoRAConfig(lr=3e-3, epochs=6, batch_size=2, lora_dropout=0.0)
    model = wrap_lora(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), cfg)
    pairs = [("Keywords of Heat. 1995. Action:", " heist, crime, los angeles"),
             ("Keywords of Babe. 1995. Children:", " pig, farm, family")]  # fmt: skip
    train_lora(model, pairs, lambda b: target_loss(model, tok, b), cfg)
    assert len(cfg.losses) == 6 and cfg.losses[-1] < 0.7 * cfg.losses[0]
    save_adapter(model, tmp_path / "adapter")
    fresh = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    loaded = load_adapter(fresh, tmp_path / "adapter").eval()
    ids = tok("Keywords of Heat. 1995. Action:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model.eval()(ids).logits)
        base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)(ids).logits
    assert not torch.allclose(base, loaded(ids).logits)  # the adapter changed the model


@pytest.mark.slow
def test_candidate_scores_equal_minus_the_training_loss(split: Split) -> None:
    keywords = ["war, drama", "space, robots, comedy", "pig, farm", "heist, crime, city"]
    cfg = KeywordLMConfig(lora=LoRAConfig(lora_dropout=0.0))
    lm = KeywordLM(keywords, ["a", "b", "c", "d"], cfg)
    history = np.array([0, 1])
    scores = lm.candidate_scores([history], np.array([[2, 3, 1]]), chunk=2)
    for j, item in enumerate([2, 3, 1]):
        pair = [(lm.prompts.prompt(history), lm.prompts.target(item))]
        with torch.no_grad():
            loss = float(target_loss(lm.model, lm.tokenizer, pair))
        assert scores[0, j] == pytest.approx(-loss, abs=1e-3)
    texts = lm.generate([history, np.array([3])], max_new_tokens=3)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
