"""`CTranslate2LLM`: fast CPU generation and scoring with CTranslate2 (the default where installed).

The dense Hugging Face copy of the model (``recfuse.frozen``; for SmolLM2 the dequantized GGUF)
is converted once into ``$RECFUSE_CACHE/models/<name>-<weights hash>-ct2-<ctranslate2 version>``
(float32, written to a temporary folder and renamed, so a killed conversion leaves no half
model); ``compute_type`` (``int8`` by default, ``float32`` for parity with transformers) is
applied when the model loads. Prompts are rendered and tokenized by the same tokenizer as the
transformers backend, so the two read identical token ids.

Speed comes from three things: CTranslate2's kernels, batches of prompts of equal length (its
decoder feeds variable-length prompts only up to the shortest one at once), and prompt prefixes
computed once and cached as CTranslate2's ``static_prompt``: the template prefix every prompt of
a task shares (system message, data rule, instruction) and, in `score_many`, the longer prefix
through the first fenced field when enough prompts of the call share it (a pairwise teacher's
user history). CTranslate2 keeps every cached prefix for the model's lifetime and offers no way
to drop one, so the cache is bounded by starting a fresh generator when it would outgrow
``prefix_cache_mb``. Per-layer hidden states are not exposed by CTranslate2; `hidden_states`
loads the transformers backend on first use and delegates.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.errors import ConfigError
from recfuse.llm.base import (
    Generation,
    GenerationParams,
    Pooling,
    Prompt,
    ScoreItem,
    ScoreManyMixin,
)
from recfuse.llm.hf_prompts import HFPromptMixin

COMPUTE_TYPES = ("int8", "float32", "int8_float32")
# Static prefixes shorter than this are not worth a cache entry.
MIN_PREFIX_TOKENS = 8
# CTranslate2 keeps every cached static prompt for the model's lifetime (SmolLM2: ~46 KB of
# float32 keys and values per prefix token, ~6.4 MB for a 140-token prefix of template + user
# history); when the next one would pass this budget a fresh generator is started (its load,
# int8 quantization included, is the price of the bound).
PREFIX_CACHE_MB = 256.0


@dataclass
class PrefixStats:
    """What the prefix reuse did since the backend was built (for benchmarks and tests).

    ``prompt_tokens``: tokens of the prompts (and option stems) sent; ``computed_tokens``: those
    the model ran (cached prefixes excluded, a newly computed prefix counted once per call);
    ``cached_prefixes`` / ``cached_tokens``: what the live generator's cache holds;
    ``reloads``: fresh generators started to empty it; ``reload_seconds``: their total time.
    """

    prompt_tokens: int = 0
    computed_tokens: int = 0
    shared_prompts: int = 0
    cached_prefixes: int = 0
    cached_tokens: int = 0
    reloads: int = 0
    reload_seconds: float = 0.0


def _import_ctranslate2() -> Any:
    try:
        import ctranslate2
    except ImportError:
        raise ConfigError(
            "backend ctranslate2 needs the package ctranslate2 (pip install 'recfuse[llm]' or "
            "ctranslate2==4.8.5); or use backend kind 'transformers'"
        ) from None
    return ctranslate2


def converted_folder(model: str = "smollm2") -> Path:
    """The CTranslate2 conversion of ``model``, made once (atomically) in the recfuse cache.

    Content-addressed by the weights hash and the ctranslate2 version (its model format).
    """
    from recfuse.data.locate import cache_root
    from recfuse.frozen import locate_model
    from recfuse.frozen.load import model_folder

    ctranslate2 = _import_ctranslate2()
    source = locate_model(model)
    if source.kind != "decoder":
        raise ConfigError(f"model {model!r} is an encoder; the LLM backends need a causal LM")
    target = (
        cache_root()
        / "models"
        / f"{source.name}-{source.weights_hash()}-ct2-{ctranslate2.__version__}"
    )
    if (target / "model.bin").is_file():
        return target
    dense = model_folder(source)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    converter = ctranslate2.converters.TransformersConverter(str(dense), low_cpu_mem_usage=True)
    converter.convert(str(tmp), quantization=None, force=True)
    try:
        os.replace(tmp, target)  # atomic: a killed conversion leaves only the tmp folder
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
    return target


class CTranslate2LLM(HFPromptMixin, ScoreManyMixin):
    """A local causal LM run by CTranslate2 behind the `LLM` interface.

    Args:
        model: ``"smollm2"`` or a local Hugging Face causal-LM folder (or ``.gguf`` file).
        compute_type: ``int8`` (default; weights quantized at load), ``float32`` (matches the
            transformers backend) or ``int8_float32``.
        batch_size: prompts per CTranslate2 call (after bucketing by length and prefix).
        threads: intra-op threads per call (``intra_threads``; default 1).
        inter_threads: calls run in parallel, each with ``threads`` threads (on 2 cores:
            ``threads=1, inter_threads=2`` or ``threads=2, inter_threads=1``).
        prefix_cache: reuse the shared template prefix across calls (``static_prompt``).
        shared_prefixes: in `score_many`, also reuse the prefix through the first fenced field
            where it pays (see `_choose_prefixes`); needs ``prefix_cache``.
        prefix_cache_mb: bound on the keys and values of cached prefixes; past it the
            generator is started afresh (``stats.reloads``).
    """

    backend = "ctranslate2"

    def __init__(
        self,
        model: str = "smollm2",
        compute_type: str = "int8",
        batch_size: int = 32,
        threads: int | None = None,
        inter_threads: int = 1,
        prefix_cache: bool = True,
        shared_prefixes: bool = True,
        prefix_cache_mb: float = PREFIX_CACHE_MB,
    ):
        from transformers import AutoTokenizer, GenerationConfig

        from recfuse.frozen import locate_model
        from recfuse.frozen.load import model_folder

        if compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"compute_type must be one of {COMPUTE_TYPES}, not {compute_type!r}")
        ctranslate2 = _import_ctranslate2()
        source = locate_model(model)
        folder = converted_folder(model)
        dense = model_folder(source)
        self.tokenizer = AutoTokenizer.from_pretrained(dense)
        self.model_name = source.name
        self.model_ref = model
        self.compute_type = compute_type
        self.model_id = f"{source.name}-{source.weights_hash()}-ct2-{compute_type}"
        self.batch_size = max(1, int(batch_size))
        self.threads = int(threads or 1)
        self.inter_threads = max(1, int(inter_threads))
        self.prefix_cache = prefix_cache
        self.shared_prefixes = shared_prefixes and prefix_cache
        self._folder = folder
        self._ct2 = ctranslate2
        self.generator = self._new_generator()
        self.state_bytes_per_token = _state_bytes_per_token(dense)
        self.prefix_cache_bytes = float(prefix_cache_mb) * 2**20
        self.stats = PrefixStats()
        eos = GenerationConfig.from_pretrained(dense).eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        self._eos = {int(e) for e in eos_ids if e is not None} | {int(self.tokenizer.eos_token_id)}
        self._cached: set[tuple[int, ...]] = set()  # static prompts in the generator's cache
        self._reference: Any = None

    def _new_generator(self) -> Any:
        return self._ct2.Generator(
            str(self._folder),
            device="cpu",
            compute_type=self.compute_type,
            intra_threads=self.threads,
            inter_threads=self.inter_threads,
        )

    def clear_prefix_cache(self) -> None:
        """Drop every cached prefix: CTranslate2 cannot evict one, so start a fresh generator.

        Results do not change: a cached prefix and a recomputed one are the same computation.
        """
        started = time.perf_counter()
        self.generator = None  # free the old model (and its cache) before loading the new one
        self.generator = self._new_generator()
        self._cached.clear()
        self.stats.reloads += 1
        self.stats.reload_seconds += time.perf_counter() - started
        self.stats.cached_prefixes = self.stats.cached_tokens = 0

    # ------------------------------------------------------------------ batching

    def _tokens(self, ids: Sequence[int]) -> list[str]:
        return list(self.tokenizer.convert_ids_to_tokens(list(ids)))

    def _buckets(
        self, encoded: list[tuple[list[int], int]], exact_length: bool
    ) -> list[tuple[tuple[int, ...], list[int]]]:
        """Group prompt indices by shared prefix (and length), in chunks of ``batch_size``.

        Returns ``[(prefix ids, [prompt index, ...])]``; within a prefix group prompts are
        sorted by length, so a chunk wastes little on uneven lengths. ``exact_length`` puts only
        equal-length prompts together (scoring reads the logits after the last prompt token,
        which CTranslate2 gives right only when the batch's prompts have equal length).
        """
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for index, (ids, n_prefix) in enumerate(encoded):
            use = self.prefix_cache and n_prefix >= MIN_PREFIX_TOKENS
            prefix = tuple(ids[:n_prefix]) if use else ()
            groups[(prefix, len(ids)) if exact_length else (prefix,)].append(index)
        chunks = []
        for key in sorted(groups, key=lambda k: (len(k[0]), k[1:])):
            rows = sorted(groups[key], key=lambda i: len(encoded[i][0]))
            for start in range(0, len(rows), self.batch_size):
                chunks.append((key[0], rows[start : start + self.batch_size]))
        return chunks

    def _choose_prefixes(self, splits: list[tuple[list[int], int, int]]) -> list[int]:
        """Per prompt, how many lead ids to compute once as a static prompt in this call.

        ``splits`` are `encode_splits` triples. The longer prefix (through the first fenced
        field) replaces the template prefix for a group of ``k`` prompts that share it when it
        is already cached or costs less than it saves: computing it once (``n_shared`` tokens,
        the template part included: a cached state cannot be extended) against ``k`` times
        the ``n_shared - n_prefix`` tokens the template-only path computes per prompt (``k``
        counts distinct prompts). The choice reads this call's other prompts, but both paths
        are the same computation: float32 scores move by < 1e-4 with it, int8 ones as much as
        with any other split of a prompt into passes (its kernels are not exact per row).
        """
        chosen = [n_prefix for _, n_prefix, _ in splits]
        if not self.shared_prefixes:
            return chosen
        distinct = {tuple(ids): n_shared for ids, _, n_shared in splits}  # a repeat is run once
        groups: Counter[tuple[int, ...]] = Counter(
            ids[:n_shared] for ids, n_shared in distinct.items() if n_shared >= MIN_PREFIX_TOKENS
        )
        for i, (ids, n_prefix, n_shared) in enumerate(splits):
            key = tuple(ids[:n_shared])
            k = groups.get(key, 0)
            template = n_prefix if n_prefix >= MIN_PREFIX_TOKENS else 0
            if k and (key in self._cached or k * (n_shared - template) > n_shared):
                chosen[i] = n_shared
                self.stats.shared_prompts += 1
        return chosen

    def _run(
        self,
        calls: list[dict[str, Any]],
        method: str,
        prefixes: Sequence[tuple[int, ...]],
    ) -> list[Any]:
        """Run the generator's ``method`` on each call (concurrently with ``inter_threads > 1``)
        with the prefix cache kept within its budget; ``prefixes[c]``: the ids of call ``c``'s
        static prompt or ().

        Every new static prompt is cached (CTranslate2 does so on first use); when the next one
        would pass ``prefix_cache_mb``, the calls before it finish and a fresh generator
        empties the cache. ``stats`` counts the tokens sent and those computed.
        """
        out: list[Any] = []
        segment: list[dict[str, Any]] = []
        for call, prefix in zip(calls, prefixes, strict=True):
            rows = call.get("start_tokens") or call.get("tokens") or []
            suffix = sum(len(r) for r in rows)
            self.stats.prompt_tokens += suffix + len(prefix) * len(rows)
            self.stats.computed_tokens += suffix
            if prefix and prefix not in self._cached:
                size = (self.stats.cached_tokens + len(prefix)) * self.state_bytes_per_token
                if self._cached and size > self.prefix_cache_bytes:
                    out += self._call(segment, method)
                    segment = []
                    self.clear_prefix_cache()
                self._cached.add(prefix)
                self.stats.cached_prefixes = len(self._cached)
                self.stats.cached_tokens += len(prefix)
                self.stats.computed_tokens += len(prefix)
            segment.append(call)
        return out + self._call(segment, method)

    def _call(self, calls: list[dict[str, Any]], name: str) -> list[Any]:
        method = getattr(self.generator, name)  # looked up now: a reload replaces the generator
        if self.inter_threads == 1:
            return [method(**call) for call in calls]
        pending = [method(**call, asynchronous=True) for call in calls]
        return [[r.result() for r in batch] for batch in pending]

    def _start(self, ids: list[int], prefix: tuple[int, ...]) -> list[str]:
        return self._tokens(ids[len(prefix) :])

    # ------------------------------------------------------------------ generate

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams | None = None
    ) -> list[Generation]:
        """Generate continuations, batched by shared prefix and length; greedy at temperature 0.

        Sampling (temperature > 0) draws from the whole vocabulary after ``seed`` is set, but
        CTranslate2's sampler is not reproducible from call to call. ``json_schema`` does not
        constrain decoding (the job's parser validates instead).
        """
        params = params or GenerationParams()
        # The template prefix only: batching by a longer shared prefix (as score_many does)
        # would split decoding batches by user, and decoding gains more from batch size
        # (CTranslate2 int8: ~25 tok/s at batch 1, ~90 at batch 8 here) than a short answer's
        # prompt pass gains from the shared tokens.
        encoded = [self.encode_split(p) for p in prompts]
        chunks = self._buckets(encoded, exact_length=False)
        if params.temperature > 0:
            self._ct2.set_random_seed(params.seed)
        started = time.perf_counter()
        calls = [self._generate_call(encoded, prefix, rows, params) for prefix, rows in chunks]
        outputs = self._run(calls, "generate_batch", [prefix for prefix, _ in chunks])
        seconds = (time.perf_counter() - started) / max(len(prompts), 1)
        results: list[Generation | None] = [None] * len(prompts)
        for (_, rows), batch in zip(chunks, outputs, strict=True):
            for row, out in zip(rows, batch, strict=True):
                results[row] = self.finish_generation(
                    out.sequences_ids[0], len(encoded[row][0]), params.stop, seconds
                )
        return [r for r in results if r is not None]

    def _generate_call(
        self,
        encoded: list[tuple[list[int], int]],
        prefix: tuple[int, ...],
        rows: list[int],
        params: GenerationParams,
    ) -> dict[str, Any]:
        call: dict[str, Any] = {
            "start_tokens": [self._start(encoded[i][0], prefix) for i in rows],
            "max_length": params.max_tokens,
            "include_prompt_in_result": False,
            "end_token": sorted(self._eos),
            "return_end_token": True,
            "max_batch_size": self.batch_size,
        }
        if prefix:
            call["static_prompt"] = self._tokens(prefix)
        if params.temperature > 0:
            call.update(sampling_topk=0, sampling_temperature=params.temperature)
        if params.stop:
            call["callback"] = self._stop_callback(params.stop, len(rows))
        return call

    def _stop_callback(self, stop: tuple[str, ...], n: int) -> Callable[[Any], bool]:
        """Stop a row as soon as its decoded tail contains a stop string."""
        window = max(len(s) for s in stop) + 4  # tokens: a stop string spans at most its chars
        generated: list[list[int]] = [[] for _ in range(n)]

        def callback(step: Any) -> bool:
            ids = generated[step.batch_id]
            ids.append(int(step.token_id))
            tail = self.tokenizer.decode(ids[-window:], skip_special_tokens=True)
            return any(s and s in tail for s in stop)

        return callback

    # ------------------------------------------------------------------ score

    def score(self, prompt: Prompt, options: Sequence[str]) -> np.ndarray:
        """Sum of option-token log-probabilities after the rendered prompt, ``[len(options)]``.

        The same computation as `score_many` on one item (so the two agree exactly).
        """
        return self.score_many([(prompt, options)])[0]

    def score_many(self, items: Sequence[ScoreItem]) -> list[np.ndarray]:
        """Score every ``(prompt, options)`` item; one float64 ``[len(options)]`` per item.

        Prompt and options are tokenized separately and concatenated (as the transformers
        backend does). An option is the sum of its tokens' next-token log-probabilities; each
        distinct context (prompt + the option's first t tokens) runs once, batched with
        equal-length contexts of the same template prefix. So a yes/no or A/B score costs one
        prompt pass however many options, and grades " 1" … " 7" (a shared space token, then a
        digit) cost two. Options whose contexts would outnumber them (long, distinct phrases)
        are scored as full sequences with ``score_batch`` instead. Prompts that share their
        text through the first fenced field (a user's history) compute it once where that pays
        (`_choose_prefixes`); callers get the most from it by passing such prompts together.
        """
        splits = [self.encode_splits(prompt) for prompt, _ in items]
        chosen = self._choose_prefixes(splits)
        encoded = [(ids, n) for (ids, _, _), n in zip(splits, chosen, strict=True)]
        option_ids = [self._option_ids(options) for _, options in items]
        out = [np.zeros(len(o), dtype=np.float64) for o in option_ids]
        stepwise = [i for i, o in enumerate(option_ids) if _contexts_pay(o)]
        contexts = [(i, tuple(opt[:t])) for i in stepwise for opt in option_ids[i]
                    for t in range(len(opt))]  # fmt: skip
        wanted = list(dict.fromkeys(contexts))
        extended = [(encoded[i][0] + list(stem), encoded[i][1]) for i, stem in wanted]
        dists = self._next_token_logprobs(extended, list(range(len(extended))))
        logprob = {key: dists[n] for n, key in enumerate(wanted)}
        for i in stepwise:
            for j, opt in enumerate(option_ids[i]):
                out[i][j] = sum(
                    float(logprob[(i, tuple(opt[:t]))][opt[t]]) for t in range(len(opt))
                )
        done = set(stepwise)
        long_pairs = [(i, j) for i in range(len(items)) if i not in done
                      for j in range(len(option_ids[i]))]  # fmt: skip
        if long_pairs:
            self._score_sequences(encoded, option_ids, long_pairs, out)
        return out

    def _score_sequences(
        self,
        encoded: list[tuple[list[int], int]],
        option_ids: list[list[list[int]]],
        pairs: list[tuple[int, int]],
        out: list[np.ndarray],
    ) -> None:
        """Score (item, option) pairs as whole prompt + option sequences into ``out``.

        Sequences are batched by exact length: padding changes int8 activation scales, and
        results must not depend on what a sequence is batched with.
        """
        by_length: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for i, j in pairs:
            by_length[len(encoded[i][0]) + len(option_ids[i][j])].append((i, j))
        chunks = [
            group[s : s + self.batch_size]
            for group in by_length.values()
            for s in range(0, len(group), self.batch_size)
        ]
        calls = [
            {
                "tokens": [self._tokens(encoded[i][0] + option_ids[i][j]) for i, j in chunk],
                "max_input_length": 0,
            }
            for chunk in chunks
        ]
        results = self._run(calls, "score_batch", [()] * len(calls))
        for chunk, batch in zip(chunks, results, strict=True):
            for (i, j), result in zip(chunk, batch, strict=True):
                out[i][j] = float(np.sum(result.log_probs[-len(option_ids[i][j]) :]))

    def _option_ids(self, options: Sequence[str]) -> list[list[int]]:
        ids = [list(self.tokenizer(o, add_special_tokens=False).input_ids) for o in options]
        if any(not o for o in ids):
            raise ConfigError(f"score: empty option in {list(options)!r}")
        return ids

    def _next_token_logprobs(
        self, encoded: list[tuple[list[int], int]], wanted: list[int]
    ) -> dict[int, np.ndarray]:
        """Log-softmax of the next-token logits after each wanted prompt, ``{index: [V]}``."""
        unique: dict[tuple[int, ...], int] = {}
        for i in wanted:
            unique.setdefault(tuple(encoded[i][0]), i)
        reps = list(unique.values())
        chunks = self._buckets([encoded[i] for i in reps], exact_length=True)
        calls = []
        for prefix, rows in chunks:
            call: dict[str, Any] = {
                "start_tokens": [self._start(encoded[reps[r]][0], prefix) for r in rows],
                "max_length": 1,
                "include_prompt_in_result": False,
                "return_logits_vocab": True,
            }
            if prefix:
                call["static_prompt"] = self._tokens(prefix)
            calls.append(call)
        by_prompt: dict[tuple[int, ...], np.ndarray] = {}
        for (_, rows), batch in zip(
            chunks, self._run(calls, "generate_batch", [p for p, _ in chunks]), strict=True
        ):
            for r, result in zip(rows, batch, strict=True):
                logits = np.asarray(result.logits[0], dtype=np.float64).reshape(-1)
                shifted = logits - logits.max()
                by_prompt[tuple(encoded[reps[r]][0])] = shifted - np.log(np.exp(shifted).sum())
        return {i: by_prompt[tuple(encoded[i][0])] for i in wanted}

    # ------------------------------------------------------------------ hidden states

    def hidden_states(
        self, texts: Sequence[str], layers: Sequence[int], pooling: Pooling = "mean"
    ) -> np.ndarray:
        """Per-layer states from the transformers backend (CTranslate2 exposes none).

        Float32 ``[len(layers), len(texts), hidden_size]``; the reference model loads on first use.
        """
        if self._reference is None:
            from recfuse.llm.transformers_backend import TransformersLLM

            self._reference = TransformersLLM(self.model_ref, batch_size=self.batch_size)
        return np.asarray(self._reference.hidden_states(texts, layers, pooling))


def _contexts_pay(options: list[list[int]]) -> bool:
    """Whether next-token passes over the options' distinct prefixes are no more than the
    full-sequence passes they replace (one per option; single-token options always pay)."""
    contexts = {tuple(o[:t]) for o in options for t in range(len(o))}
    return len(contexts) <= len(options)


def _state_bytes_per_token(dense: Path) -> int:
    """Bytes of cached keys and values per prefix token: float32 K and V in every layer."""
    config = json.loads((Path(dense) / "config.json").read_text())
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    return 2 * int(config["num_hidden_layers"]) * kv_heads * head_dim * 4
