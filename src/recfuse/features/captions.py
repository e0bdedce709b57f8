"""Captions: a short description of each item written by a frozen LLM, then encoded.

This is the representation the DFF paper compares hidden states against: the item is first
summarized into language by a generative model, and the summary is embedded by a frozen encoder.
Generation is an `LLMJob` (greedy decoding; on the CPU the backend is selectable, ``auto`` =
CTranslate2 where installed, else transformers, the reference; `DeviceCaptioner` on a GPU): every
answer lands in the job's SQLite cache as it is produced, so a killed run resumes and the same
prompt for the same backend and model is never asked twice. The backend is part of both the
LLM cache key and the caption folder's key, so captions of different backends (int8 CTranslate2
and float32 transformers decode greedily to different text) are never mixed. Item text is
untrusted, so it sits inside a data fence (`CAPTION_TEMPLATE`). A finished run writes
``captions.json`` in its folder and is read from there afterwards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from recfuse.atomic import write_json
from recfuse.errors import ConfigError
from recfuse.features.extract import extract_features
from recfuse.features.store import FeatureSet, FeatureStore, texts_hash
from recfuse.llm.backend_spec import BackendSpec
from recfuse.llm.base import BackendError, CapabilityError, Generation, GenerationParams
from recfuse.llm.cache import LLMCache
from recfuse.llm.job import LLMJob
from recfuse.llm.prompts import PromptTemplate
from recfuse.llm.sources import PromptRecord

# A 135M model follows a plain one-line request best (a longer system prompt about data and
# instructions made SmolLM2 talk about the prompt instead of the item); the fence, with its
# neutralized content, is what keeps item text from acting as instructions.
CAPTION_INSTRUCTIONS = "Summarize what this item is about in one short sentence."


CAPTION_TEMPLATE = PromptTemplate(
    user=f"{CAPTION_INSTRUCTIONS}\n\n{{item}}",
    system=None,
    version="caption-v1",
    max_field_chars=600,
)


def caption_prompt(text: str) -> list[dict[str, str]]:
    """The chat for one item: the request, then the fenced (neutralized) item text."""
    return CAPTION_TEMPLATE.build({"item": text})


@dataclass
class CaptionResult:
    """Captions of some items and, once encoded, their feature set.

    Attributes:
        items: item indices that have captions (the rest of the catalogue has none).
        captions: one caption per entry of ``items``.
        features: the encoder's feature set over ``captions`` (rows follow ``items``).
        folder: where the captions live.
        backend: the LLM backend kind that wrote them (sets from before it was recorded:
            ``transformers``).
    """

    items: np.ndarray
    captions: list[str]
    features: FeatureSet | None
    folder: Path
    backend: str = "transformers"

    def summary(self) -> str:
        where = self.features.folder if self.features else "(not encoded)"
        return f"{len(self.items)} captions ({self.backend}) in {self.folder}; encoded features: {where}"

    def matrix(self, n_items: int, layer: int = -1, pooling: str = "mean") -> np.ndarray:
        """Caption features over the whole catalogue [n_items, d]; uncaptioned rows are zero."""
        if self.features is None:
            raise ValueError("captions are not encoded yet")
        layer = self.features.n_layers - 1 if layer < 0 else layer
        rows = self.features.load(layer, pooling)
        out = np.zeros((n_items, rows.shape[1]), dtype=np.float32)
        out[self.items] = rows
        return out


class DeviceCaptioner:
    """Greedy chat generation with the frozen LLM on a torch device (``cuda`` on a GPU machine).

    The CPU path goes through the LLM runtime (`TransformersLLM`); this one exists because that
    runtime runs on the CPU, and captioning a whole catalogue there takes hours. It meets the
    `recfuse.llm.LLM` ``generate`` contract, so an `LLMJob` drives it and caches its answers.
    """

    backend = "torch-device"

    def __init__(self, llm: str = "smollm2", device: str = "cuda", batch_size: int = 256) -> None:
        from recfuse.frozen import load_frozen

        self.tokenizer, model, source = load_frozen(llm, causal_lm=True)
        self.model = model.to(device)
        self.model_id = f"{source.name}-{source.weights_hash()}"
        self.device = device
        self.batch_size = batch_size

    def generate(
        self, prompts: Sequence[Any], params: GenerationParams | None = None
    ) -> list[Generation]:
        """Greedy captions (``temperature`` must be 0), batched by similar prompt length."""
        import torch

        params = params or GenerationParams(max_tokens=32)
        if params.temperature != 0 or params.stop:
            raise CapabilityError("DeviceCaptioner decodes greedily, without stop strings")
        texts = [
            self.tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
            for p in prompts
        ]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out_texts: list[str] = [""] * len(texts)
        for lo in range(0, len(order), self.batch_size):
            rows = order[lo : lo + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in rows],
                add_special_tokens=False,
                padding=True,
                padding_side="left",
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                out = self.model.generate(
                    **enc,
                    max_new_tokens=params.max_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            decoded = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            for row, text in zip(rows, decoded, strict=True):
                out_texts[row] = text
        return [Generation(t) for t in out_texts]

    def score(self, prompt: Any, options: Sequence[str]) -> np.ndarray:
        raise CapabilityError("DeviceCaptioner only generates")

    def hidden_states(
        self, texts: Sequence[str], layers: Sequence[int], pooling: Any = "mean"
    ) -> np.ndarray:
        raise CapabilityError("DeviceCaptioner only generates")


# What `caption_items` and the CLI accept on the CPU (``auto``: CTranslate2 where installed).
CPU_BACKENDS = ("auto", "ctranslate2", "transformers")
# Greedy float32 decoding by the same Hugging Face model on the CPU or a torch device: one caption
# family, stored under the key captions always had.
REFERENCE_BACKENDS = ("transformers", "torch-device")


def caption_folder(
    store: FeatureStore,
    dataset: str,
    llm_id: str,
    texts: Sequence[str],
    max_tokens: int,
    backend: str = "transformers",
) -> Path:
    """The folder of one caption set, keyed by backend, model, texts, prompt and length.

    ``backend`` is a resolved kind (``ctranslate2``, ``transformers``, ``torch-device``) and
    ``llm_id`` that backend's ``model_id``. The float32 Hugging Face decoders (`REFERENCE_BACKENDS`)
    keep the key captions had before the backend was selectable (no ``backend`` field), so the
    caption sets made that way (the GPU run's, see docs/dff.md) stay valid; every other backend
    adds its name (CTranslate2's ``model_id`` also names its compute type).
    """
    identity: dict[str, Any] = {"llm": llm_id, "texts": texts_hash(texts)}
    identity.update(prompt=CAPTION_INSTRUCTIONS, max_tokens=max_tokens)
    if backend not in REFERENCE_BACKENDS:
        identity["backend"] = backend
    return store.root / dataset / f"captions-{store.key(identity)}"


def caption_backend(
    kind: str = "auto",
    llm: str = "smollm2",
    batch_size: int | None = None,
    threads: int | None = None,
) -> BackendSpec:
    """The CPU captioning backend as a `BackendSpec` (``kind`` one of `CPU_BACKENDS`).

    ``threads`` default: ``$OMP_NUM_THREADS`` or 1 (the transformers backend reads torch's
    setting; CTranslate2 needs it given, its own default is 1 thread).
    """
    if kind not in CPU_BACKENDS:
        raise ConfigError(f"caption backend must be one of {CPU_BACKENDS}, not {kind!r}")
    threads = threads or int(os.environ.get("OMP_NUM_THREADS", "1"))
    return BackendSpec(kind=kind, model=llm, batch_size=batch_size, threads=threads)  # type: ignore[arg-type]


def generate_captions(
    texts: Sequence[str],
    folder: Path,
    llm: str = "smollm2",
    max_tokens: int = 32,
    batch_size: int = 8,
    chunk_items: int = 32,
    max_chunks: int | None = None,
    progress: bool = True,
    backend: Any = None,
    cache: LLMCache | None = None,
) -> list[str] | None:
    """Captions for ``texts`` (finished under ``folder``); None if ``max_chunks`` stopped early.

    One `LLMJob` per chunk of ``chunk_items`` texts (the unit of ``max_chunks``, a time budget)
    answers the prompts its cache does not hold yet. ``backend``: a `BackendSpec` or any built
    `recfuse.llm.LLM` (default: the transformers backend with ``llm``, the reference); ``cache``:
    default the shared LLM cache.
    """
    final = folder / "captions.json"
    if final.is_file():
        return list(json.loads(final.read_text())["captions"])
    if backend is None:
        backend = BackendSpec(kind="transformers", model=llm, batch_size=batch_size)
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
    cache = cache or LLMCache()
    captions: list[str] = [""] * len(texts)
    computed = 0
    bar = tqdm(total=len(texts), desc="captions", unit="item", disable=not progress)
    # Chunks of similar length: CTranslate2 computes a batch's prompts together only up to the
    # shortest one and feeds the rest token by token, so a chunk mixing a title-only item with
    # a long description runs at decoding speed. A prompt's cache key does not depend on its
    # chunk, so answers cached under the old item-order chunks are still found.
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    for start in range(0, len(texts), chunk_items):
        rows = order[start : start + chunk_items]
        records = [PromptRecord(str(i), {"item": texts[i]}) for i in rows]
        job = LLMJob(
            f"{folder.name}-{start:07d}",
            records,
            CAPTION_TEMPLATE,
            backend,
            params,
            cache=cache,
            progress=False,
        )
        plan = job.plan()
        if len(cache.done_keys([item.key for _, item in plan])) < len(plan):
            if max_chunks is not None and computed >= max_chunks:
                bar.close()
                return None
            job.run(batch_size=len(records))  # one generate call per chunk, as before
            backend = job.llm  # built once, reused by the next chunk
            computed += 1
        for row, (_, item) in zip(rows, plan, strict=True):
            captions[row] = _caption_text(cache, item.key)
        bar.update(len(records))
    bar.close()
    kind = backend.resolved_kind() if isinstance(backend, BackendSpec) else backend.backend
    write_json(final, {"llm": llm, "backend": kind, "max_tokens": max_tokens, "captions": captions})
    return captions


def _caption_text(cache: LLMCache, key: str) -> str:
    row = cache.get(key)
    if row is None or row.status != "ok" or row.raw_text is None:
        reason = row.reason if row is not None else "no answer"
        raise BackendError(f"caption {key[:12]}: the model gave no caption ({reason})")
    return row.raw_text.strip()


def caption_items(
    texts: Sequence[str],
    items: np.ndarray,
    dataset: str,
    llm: str = "smollm2",
    encoder: str = "minilm",
    store: FeatureStore | None = None,
    max_tokens: int = 32,
    batch_size: int | None = None,
    max_chunks: int | None = None,
    progress: bool = True,
    device: str = "cpu",
    encode: bool = True,
    backend: str = "auto",
    threads: int | None = None,
    cache: LLMCache | None = None,
) -> CaptionResult:
    """Caption the given item indices of a catalogue and encode the captions with ``encoder``.

    On the CPU ``backend`` picks the LLM runtime (`CPU_BACKENDS`; ``auto`` = CTranslate2 int8
    where installed, ``transformers`` = the float32 reference) and ``batch_size`` its prompts per
    call (default 32 for CTranslate2, 8 for transformers). ``device`` other than ``cpu``
    generates with `DeviceCaptioner` in chunks of ``8 * batch_size`` prompts (``backend`` is not
    used there). ``encode=False`` stops after the captions; ``cache``: the LLM answer cache
    (default the shared one).
    """
    store = store or FeatureStore()
    chosen = [texts[i] for i in items]
    llm_backend: BackendSpec | DeviceCaptioner
    if device == "cpu":
        llm_backend = caption_backend(backend, llm, batch_size, threads)
        kind, llm_id = llm_backend.identity()
        # a chunk is one generate call: CTranslate2 buckets it by length, so give it full batches
        chunk_items = max(32, llm_backend.effective_batch_size())
    else:
        llm_backend = DeviceCaptioner(llm, device, batch_size or 256)
        kind, llm_id = llm_backend.backend, llm_backend.model_id
        chunk_items = 8 * (batch_size or 256)
    folder = caption_folder(store, dataset, llm_id, chosen, max_tokens, backend=kind)
    captions = generate_captions(
        chosen,
        folder,
        llm,
        max_tokens,
        chunk_items=chunk_items,
        max_chunks=max_chunks,
        progress=progress,
        backend=llm_backend,
        cache=cache,
    )
    if captions is None:
        return CaptionResult(np.asarray(items), [], None, folder, kind)
    write_json(folder / "items.json", {"items": [int(i) for i in items], "backend": kind})
    if not encode:
        return CaptionResult(np.asarray(items), captions, None, folder, kind)
    features = extract_features(
        captions,
        encoder,
        f"{dataset}-captions",
        template=f"captions:{folder.name}",
        store=store,
        progress=progress,
    )
    return CaptionResult(np.asarray(items), captions, features, folder, kind)


def cached_captions(
    dataset: str, store: FeatureStore | None = None, backend: str | None = None
) -> CaptionResult | None:
    """The largest finished caption set of ``dataset`` in the store (not yet encoded), if any.

    ``backend``: only sets made by this backend kind (sets written before the backend was
    recorded count as ``transformers``); None takes any.
    """
    store = store or FeatureStore()
    best: CaptionResult | None = None
    for final in sorted((store.root / dataset).glob("captions-*/captions.json")):
        items_path = final.parent / "items.json"
        if not items_path.is_file():
            continue
        meta = json.loads(items_path.read_text())
        made_by = meta.get("backend", "transformers")
        if (
            backend is not None
            and made_by != backend
            and {made_by, backend} != set(REFERENCE_BACKENDS)
        ):
            continue
        items = np.asarray(meta["items"], dtype=np.int64)
        if best is None or len(items) > len(best.items):
            captions = list(json.loads(final.read_text())["captions"])
            best = CaptionResult(items, captions, None, final.parent, made_by)
    return best


def encode_captions(
    result: CaptionResult,
    dataset: str,
    encoder: str = "minilm",
    store: FeatureStore | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> CaptionResult:
    """Encode the captions with a frozen model (all layers, cached like any feature set)."""
    features = extract_features(
        result.captions,
        encoder,
        f"{dataset}-captions",
        template=f"captions:{result.folder.name}",
        store=store or FeatureStore(),
        progress=progress,
        device=device,
    )
    return CaptionResult(result.items, result.captions, features, result.folder, result.backend)


def caption_dataset(
    dataset: str,
    llm: str = "smollm2",
    encoder: str = "minilm",
    template: str | None = None,
    max_items: int | None = None,
    items_of_users: int | None = None,
    seed: int = 0,
    max_tokens: int = 32,
    batch_size: int | None = None,
    folder: str | None = None,
    device: str = "cpu",
    encode: bool = True,
    backend: str = "auto",
    threads: int | None = None,
) -> CaptionResult:
    """Caption a dataset's items: all, the first ``max_items``, or those of a user sample.

    ``backend``, ``batch_size``, ``threads``: as `caption_items`.
    """
    from recfuse.data import load_dataset

    data = load_dataset(dataset)
    texts = data.item_texts(template)
    items = np.arange(data.n_items)
    if items_of_users is not None:
        from recfuse.data.subsample import sample_users

        users = sample_users(data, items_of_users, seed)
        inter = data.interactions
        items = np.unique(inter.loc[inter["user"].isin(users), "item"].to_numpy())
    if max_items is not None:
        items = items[:max_items]
    return caption_items(
        texts,
        items,
        dataset,
        llm,
        encoder,
        FeatureStore(folder),
        max_tokens,
        batch_size,
        device=device,
        encode=encode,
        backend=backend,
        threads=threads,
    )
