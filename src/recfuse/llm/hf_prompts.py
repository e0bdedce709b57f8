"""Prompt rendering and tokenization shared by the backends that use a Hugging Face tokenizer.

`TransformersLLM` and `CTranslate2LLM` read the same tokenizer folder and must turn a prompt into
the same token ids (their outputs are compared token for token), so both render and encode here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recfuse.errors import ConfigError
from recfuse.llm.base import Generation, Prompt, RawPrompt, as_chat, truncate_at_stop
from recfuse.llm.prompts import DATA_RULE, FENCE_OPEN, second_fence


class HFPromptMixin:
    """``render`` / ``encode`` for a backend with ``self.tokenizer`` and ``self.model_name``."""

    tokenizer: Any
    model_name: str
    _eos: set[int]

    def render(self, prompt: Prompt) -> str:
        """The exact text the model reads for ``prompt`` (chat template applied to chats)."""
        chat = as_chat(prompt)
        if chat is None:
            assert isinstance(prompt, RawPrompt)
            return prompt.text
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(
                f"model {self.model_name!r} has no chat template; send RawPrompt text instead"
            )
        return str(
            self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        )

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of the rendered prompt (templates carry their own special tokens)."""
        templated = not isinstance(prompt, RawPrompt)
        return list(self.tokenizer(self.render(prompt), add_special_tokens=not templated).input_ids)

    def finish_generation(
        self, tokens: Sequence[int], n_prompt: int, stop: Sequence[str], seconds: float
    ) -> Generation:
        """A `Generation` from new token ids: cut at end-of-sequence, decoded, cut at ``stop``.

        ``completion_tokens`` counts the end-of-sequence token when one was generated.
        """
        tokens = list(tokens)
        end = next((i for i, t in enumerate(tokens) if t in self._eos), None)
        used = tokens if end is None else tokens[:end]
        text, hit_stop = truncate_at_stop(
            self.tokenizer.decode(used, skip_special_tokens=True), stop
        )
        finish = "stop" if end is not None or hit_stop else "length"
        return Generation(text, n_prompt, len(used) + (end is not None), finish, seconds)

    def encode_split(self, prompt: Prompt) -> tuple[list[int], int]:
        """``(ids, n_prefix)``: the ids `encode` gives, and how many lead ids are a reusable prefix.

        The prefix is the template text every prompt of a task shares: everything before the
        first data fence after the data rule (`PromptTemplate` prompts), else everything before
        the last message's content (plain chats: the system turn and the turn header). It depends
        on this prompt alone — never on what it is batched with — so batched and one-by-one
        results see the same split. ``n_prefix`` is 0 for `RawPrompt` and always leaves at least
        one id after the prefix. Token boundaries come from the full text's offsets, so the ids
        are exactly `encode`'s.
        """
        ids, n_prefix, _ = self.encode_splits(prompt)
        return ids, n_prefix

    def encode_splits(self, prompt: Prompt) -> tuple[list[int], int, int]:
        """``(ids, n_prefix, n_shared)``: `encode_split` plus a second, longer split.

        ``n_shared`` counts the lead ids before the prompt's *second* data fence: the template
        and its first fenced field (a pairwise teacher's user history, which all of that
        user's prompts repeat), 0 when there is no second fence. Like ``n_prefix`` it depends
        on this prompt alone and leaves at least one id after it.
        """
        text = self.render(prompt)
        templated = not isinstance(prompt, RawPrompt)
        enc = self.tokenizer(text, add_special_tokens=not templated, return_offsets_mapping=True)
        ids = list(enc.input_ids)
        cut = split_point(text, prompt)
        second = second_fence(text, cut) if cut > 0 else 0
        return (
            ids,
            _tokens_before(enc.offset_mapping, cut),
            _tokens_before(enc.offset_mapping, second),
        )


def _tokens_before(offsets: Sequence[tuple[int, int]], cut: int) -> int:
    """How many lead tokens end at or before character ``cut`` (never all of them)."""
    if cut <= 0:
        return 0
    n = 0
    for _, end in offsets:  # the leading run of tokens that end before the cut
        if end > cut:
            break
        n += 1
    return max(0, min(n, len(offsets) - 1))


def split_point(text: str, prompt: Prompt) -> int:
    """Character index in rendered ``text`` where the prompt's own content begins (0: none)."""
    chat = as_chat(prompt)
    if chat is None or not chat:
        return 0
    rule = text.find(DATA_RULE)
    if rule >= 0:
        fence = text.find(FENCE_OPEN, rule + len(DATA_RULE))
        if fence >= 0:
            return fence
    last = chat[-1]["content"]
    return max(text.rfind(last), 0) if last else 0
