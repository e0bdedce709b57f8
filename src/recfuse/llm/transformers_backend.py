"""`TransformersLLM`: a local causal LM (SmolLM2 by default) loaded read-only through recfuse.frozen.

Chat prompts go through the tokenizer's chat template; `RawPrompt` text is used as is. Batches
are left-padded for generation and right-padded for scoring and hidden states, by hand, so the
shared (lru-cached) tokenizer is never mutated.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import StoppingCriteria

from recfuse.errors import ConfigError
from recfuse.llm.base import (
    Generation,
    GenerationParams,
    Pooling,
    Prompt,
    ScoreManyMixin,
    TextCallback,
    TextStream,
)
from recfuse.llm.hf_prompts import HFPromptMixin
from recfuse.llm.prompts import register_special_tokens, special_tokens_of


class TransformersLLM(HFPromptMixin, ScoreManyMixin):
    """A frozen local model behind the `LLM` interface.

    Args:
        model: ``"smollm2"`` (the packaged SmolLM2-135M-Instruct GGUF), ``"minilm"`` is not a
            decoder and is refused; otherwise a local Hugging Face folder or a ``.gguf`` file.
        batch_size: prompts per forward pass.
        threads: if given, ``torch.set_num_threads(threads)`` at construction.
    """

    backend = "transformers"

    def __init__(self, model: str = "smollm2", batch_size: int = 8, threads: int | None = None):
        from recfuse.frozen import load_frozen, locate_model

        if threads is not None:
            torch.set_num_threads(threads)
        source = locate_model(model)
        if source.kind != "decoder":
            raise ConfigError(f"model {model!r} is an encoder; the LLM backends need a causal LM")
        self.tokenizer, self.model, self.source = load_frozen(model, causal_lm=True)
        register_special_tokens(special_tokens_of(self.tokenizer))  # neutralize() defuses them
        self.model_name = source.name
        self.model_id = f"{source.name}-{source.weights_hash()}"
        self.batch_size = max(1, int(batch_size))
        eos = self.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        self._eos = {int(e) for e in eos_ids if e is not None} | {int(self.tokenizer.eos_token_id)}
        self._pad = int(self.tokenizer.pad_token_id)

    # ------------------------------------------------------------------ encoding

    def _pad_batch(self, seqs: list[list[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad id lists into ``input_ids`` and ``attention_mask`` tensors, both ``[B, T]``."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            span = slice(width - len(seq), width) if left else slice(0, len(seq))
            ids[row, span] = torch.tensor(seq, dtype=torch.long)
            mask[row, span] = 1
        return ids, mask

    # ------------------------------------------------------------------ generate

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams | None = None
    ) -> list[Generation]:
        """Generate continuations, batched; greedy at temperature 0.

        Sampled outputs (temperature > 0) are seeded per batch, so they depend on how prompts
        are batched. ``json_schema`` does not constrain local decoding (see `GenerationParams`).
        """
        return self.generate_stream(prompts, params)

    def generate_stream(
        self,
        prompts: Sequence[Prompt],
        params: GenerationParams | None = None,
        on_text: TextCallback | None = None,
    ) -> list[Generation]:
        """`generate` that calls ``on_text(prompt index, new text)`` after each decoding step.

        The pieces of a prompt join to its final text (a possible start of a stop string or an
        incomplete character is held back until it resolves); ``on_text`` returning False stops
        that prompt (the rest of its batch goes on). See `recfuse.llm.base.generate_streaming`.
        """
        params = params or GenerationParams()
        encoded = [self.encode(p) for p in prompts]
        results: list[Generation | None] = [None] * len(prompts)
        # Similar lengths share a batch: less padding, fewer wasted FLOPs.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            hook = _TextHook(self, rows, params.stop, on_text)
            gens = self._generate_batch([encoded[i] for i in rows], params, hook)
            for row, gen in zip(rows, gens, strict=True):
                results[row] = gen
        return [r for r in results if r is not None]

    def _decode_new(self, tokens: list[int]) -> tuple[list[int], bool]:
        """New tokens up to (not including) end of sequence, and whether it was reached."""
        end = next((i for i, t in enumerate(tokens) if t in self._eos), None)
        return (tokens, False) if end is None else (tokens[:end], True)

    @torch.inference_mode()
    def _generate_batch(
        self, seqs: list[list[int]], params: GenerationParams, hook: _TextHook
    ) -> list[Generation]:
        from transformers import StoppingCriteriaList

        ids, mask = self._pad_batch(seqs, left=True)
        hook.width = ids.shape[1]
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "pad_token_id": self._pad,
            "eos_token_id": sorted(self._eos),
            # The hook finds stop strings in the decoded text and stops that row.
            "stopping_criteria": StoppingCriteriaList([hook]),
        }
        if params.temperature > 0:
            torch.manual_seed(params.seed)
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False)
        started = time.perf_counter()
        out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        seconds = (time.perf_counter() - started) / len(seqs)
        gens = []
        for row, (seq, tokens) in enumerate(
            zip(seqs, out[:, ids.shape[1] :].tolist(), strict=True)
        ):
            # A row the hook stopped (stop string, cancelled) is padded after its last token.
            gen = self.finish_generation(tokens[: hook.length[row]], len(seq), params.stop, seconds)
            hook.flush(row, gen.text)
            gens.append(gen)
        return gens

    # ------------------------------------------------------------------ score

    @torch.inference_mode()
    def score(self, prompt: Prompt, options: Sequence[str]) -> np.ndarray:
        """Sum of option-token log-probabilities after the rendered prompt, ``[len(options)]``.

        Prompt and option are tokenized separately and concatenated, so every option is scored
        against the same prefix tokens. The prefix runs once; its key/value cache is shared by
        all options (a pairwise or yes/no score costs one prompt pass, not one per option).
        """
        if not options:
            return np.zeros(0, dtype=np.float64)
        prefix = self.encode(prompt)
        option_ids = [list(self.tokenizer(o, add_special_tokens=False).input_ids) for o in options]
        if any(not o for o in option_ids):
            raise ConfigError(f"score: empty option in {list(options)!r}")
        cache_arg = (
            "cache"
            if "cache" in inspect.signature(self.model.forward).parameters
            else ("past_key_values")
        )
        out = self.model(input_ids=torch.tensor([prefix]), use_cache=True, logits_to_keep=1)
        prefix_cache = getattr(out, cache_arg, None) or out.past_key_values
        # log p(first option token | prefix) for every vocabulary entry, [V].
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        scores = np.array([float(first[o[0]]) for o in option_ids], dtype=np.float64)
        longer = [i for i, o in enumerate(option_ids) if len(o) > 1]
        for start in range(0, len(longer), self.batch_size):
            rows = longer[start : start + self.batch_size]
            chunk = [option_ids[i] for i in rows]
            width = max(len(o) for o in chunk)
            ids, option_mask = self._pad_batch(chunk, left=False)
            mask = torch.cat(
                [torch.ones((len(chunk), len(prefix)), dtype=torch.long), option_mask], 1
            )
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(chunk))
            logits = self.model(input_ids=ids, attention_mask=mask, **{cache_arg: cache}).logits
            logp = torch.log_softmax(logits[:, : width - 1].float(), dim=-1)  # [B, T-1, V]
            for row, (index, opt) in enumerate(zip(rows, chunk, strict=True)):
                # option token j (j >= 1) is predicted at option position j - 1.
                rest = logp[row, torch.arange(len(opt) - 1), torch.tensor(opt[1:])]
                scores[index] += float(rest.sum())
        return scores

    @torch.inference_mode()
    def token_logprobs(
        self, text: str, top: int = 0
    ) -> tuple[list[str], list[float | None], list[int], list[dict[str, float] | None] | None]:
        """Per-token log-probabilities of raw ``text`` in one forward pass.

        Returns (token strings, logprobs, char offsets, top): ``top`` > 0 adds, per position,
        the ``top`` most likely tokens there with their log-probabilities (else None). The
        first token has no left context and gets ``None`` in both (as OpenAI's echo does).
        """
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc.input_ids)
        if not ids:
            return [], [], [], None if top == 0 else []
        tensor = torch.tensor([ids], dtype=torch.long)
        logits = self.model(input_ids=tensor).logits[0].float()
        logp = torch.log_softmax(logits[:-1], dim=-1)  # [T-1, V]: position t predicts t + 1
        picked = logp[torch.arange(len(ids) - 1), tensor[0, 1:]].tolist()
        offsets = [int(start) for start, _ in enc.offset_mapping]
        tokens = [text[a:b] for a, b in enc.offset_mapping]
        tops: list[dict[str, float] | None] | None = None
        if top > 0:
            values, indices = logp.topk(top, dim=-1)
            tops = [None] + [
                {self.tokenizer.decode([i]): v for i, v in zip(row_i, row_v, strict=True)}
                for row_i, row_v in zip(indices.tolist(), values.tolist(), strict=True)
            ]
        return tokens, [None, *picked], offsets, tops

    # ------------------------------------------------------------------ hidden states

    @torch.inference_mode()
    def hidden_states(
        self, texts: Sequence[str], layers: Sequence[int], pooling: Pooling = "mean"
    ) -> np.ndarray:
        """Pooled per-layer states, float32 ``[len(layers), len(texts), hidden_size]``.

        Layer 0 is the embedding output and layer ``num_hidden_layers`` the last block (before
        the final norm, as transformers reports it); negative indices count from the end.
        ``pooling="last"`` takes the last real token, ``"mean"`` averages real tokens.
        """
        n_states = int(self.model.config.num_hidden_layers) + 1
        picked = []
        for layer in layers:
            if not -n_states <= layer < n_states:
                raise ConfigError(f"layer {layer} out of range for {n_states} hidden states")
            picked.append(layer % n_states)
        if pooling not in ("mean", "last"):
            raise ConfigError(f"pooling must be 'mean' or 'last', not {pooling!r}")
        hidden_size = int(self.model.config.hidden_size)
        out = np.zeros((len(picked), len(texts), hidden_size), dtype=np.float32)
        encoded = [
            list(self.tokenizer(t, add_special_tokens=True).input_ids) or [self._pad] for t in texts
        ]
        for start in range(0, len(texts), self.batch_size):
            chunk = encoded[start : start + self.batch_size]
            ids, mask = self._pad_batch(chunk, left=False)
            states = self.model.base_model(
                input_ids=ids, attention_mask=mask, output_hidden_states=True
            ).hidden_states
            stacked = torch.stack([states[i] for i in picked])  # [L, B, T, H]
            if pooling == "mean":
                weights = mask[None, :, :, None].to(stacked.dtype)
                pooled = (stacked * weights).sum(2) / weights.sum(2)
            else:
                last = mask.sum(1) - 1
                pooled = stacked[:, torch.arange(len(chunk)), last]
            out[:, start : start + len(chunk)] = pooled.float().numpy()
        return out


class _TextHook(StoppingCriteria):
    """A transformers stopping criterion run after every decoding step of one batch.

    It decodes each live row's new tokens into that row's `TextStream` (which hands ``on_text``
    the part that can no longer change) and marks a row done at a stop string or when
    ``on_text`` returns False. ``length[row]`` is how many new tokens the row kept (rows done
    early are padded by ``generate`` afterwards).
    """

    def __init__(
        self,
        llm: TransformersLLM,
        rows: list[int],
        stop: Sequence[str],
        on_text: TextCallback | None,
    ) -> None:
        self.llm = llm
        self.streams = [TextStream(row, stop, on_text) for row in rows]
        self.width = 0
        self.length: list[int | None] = [None] * len(rows)

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        for row, tokens in enumerate(input_ids[:, self.width :].tolist()):
            if self.length[row] is not None:
                continue
            used, ended = self.llm._decode_new(tokens)
            if ended:  # generate marks this row done itself; the final text is flushed later
                self.length[row] = len(tokens)
                continue
            going, _ = self.streams[row].update(
                self.llm.tokenizer.decode(used, skip_special_tokens=True)
            )
            if not going:
                self.length[row] = len(tokens)
        done = [length is not None for length in self.length]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def flush(self, row: int, text: str) -> None:
        """Send what is left of a row's final text."""
        self.streams[row].flush(text)
