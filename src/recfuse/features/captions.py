"""Captions: a short description of each item written by a frozen LLM, then encoded.

This is the representation the DFF paper compares hidden states against: the item is first
summarized into language by a generative model, and the summary is embedded by a frozen encoder.
Generation goes through the LLM runtime (`recfuse.llm.transformers_backend.TransformersLLM`,
greedy decoding). Item text is untrusted, so it sits inside a data fence and the instructions say
to treat it as data. Captions are saved in chunks, atomically, so a killed run resumes; a
finished run writes ``captions.json`` and is never recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from recfuse.atomic import write_json
from recfuse.features.extract import extract_features
from recfuse.features.store import FeatureSet, FeatureStore, texts_hash

# A 135M model follows a plain one-line request best (a longer system prompt about data and
# instructions made SmolLM2 talk about the prompt instead of the item); the fence, with its
# neutralized content, is what keeps item text from acting as instructions.
CAPTION_INSTRUCTIONS = "Summarize what this item is about in one short sentence."


def caption_prompt(text: str) -> list[dict[str, str]]:
    """The chat for one item: the request, then the fenced (neutralized) item text."""
    from recfuse.llm.prompts import fence

    return [{"role": "user", "content": f"{CAPTION_INSTRUCTIONS}\n\n{fence(text, 'item', 600)}"}]


@dataclass
class CaptionResult:
    """Captions of some items and, once encoded, their feature set.

    Attributes:
        items: item indices that have captions (the rest of the catalogue has none).
        captions: one caption per entry of ``items``.
        features: the encoder's feature set over ``captions`` (rows follow ``items``).
        folder: where the captions live.
    """

    items: np.ndarray
    captions: list[str]
    features: FeatureSet | None
    folder: Path

    def summary(self) -> str:
        where = self.features.folder if self.features else "(not encoded)"
        return f"{len(self.items)} captions in {self.folder}; encoded features: {where}"

    def matrix(self, n_items: int, layer: int = -1, pooling: str = "mean") -> np.ndarray:
        """Caption features over the whole catalogue [n_items, d]; uncaptioned rows are zero."""
        if self.features is None:
            raise ValueError("captions are not encoded yet")
        layer = self.features.n_layers - 1 if layer < 0 else layer
        rows = self.features.load(layer, pooling)
        out = np.zeros((n_items, rows.shape[1]), dtype=np.float32)
        out[self.items] = rows
        return out


@dataclass(frozen=True)
class Caption:
    text: str


class DeviceCaptioner:
    """Greedy chat generation with the frozen LLM on a torch device (``cuda`` on a GPU machine).

    The CPU path goes through the LLM runtime (`TransformersLLM`); this one exists because that
    runtime runs on the CPU, and captioning a whole catalogue there takes hours.
    """

    def __init__(self, llm: str = "smollm2", device: str = "cuda", batch_size: int = 256) -> None:
        from recfuse.frozen import load_frozen

        self.tokenizer, model, _ = load_frozen(llm, causal_lm=True)
        self.model = model.to(device)
        self.device = device
        self.batch_size = batch_size

    def generate(
        self,
        prompts: Sequence[list[dict[str, str]]],
        max_tokens: int = 32,
        temperature: float = 0.0,
    ) -> list[Caption]:
        """Greedy captions (``temperature`` must be 0), batched by similar prompt length."""
        import torch

        if temperature != 0:
            raise ValueError("DeviceCaptioner decodes greedily only")
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
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            decoded = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            for row, text in zip(rows, decoded, strict=True):
                out_texts[row] = text
        return [Caption(t) for t in out_texts]


def caption_folder(
    store: FeatureStore, dataset: str, llm_id: str, texts: Sequence[str], max_tokens: int
) -> Path:
    identity = {"llm": llm_id, "texts": texts_hash(texts), "prompt": CAPTION_INSTRUCTIONS}
    identity["max_tokens"] = max_tokens
    return store.root / dataset / f"captions-{store.key(identity)}"


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
) -> list[str] | None:
    """Captions for ``texts`` (cached under ``folder``); None if ``max_chunks`` stopped early.

    ``backend`` is any object with the `recfuse.llm` ``generate(prompts, max_tokens=...,
    temperature=...)`` method; by default the transformers backend with ``llm``.
    """
    final = folder / "captions.json"
    if final.is_file():
        return list(json.loads(final.read_text())["captions"])
    chunk_dir = folder / "chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    starts = range(0, len(texts), chunk_items)
    done = [s for s in starts if (chunk_dir / f"chunk{s:07d}.json").is_file()]
    bar = tqdm(total=len(texts), initial=len(done) * chunk_items, desc="captions", unit="item")
    bar.disable = not progress
    computed = 0
    for start in starts:
        path = chunk_dir / f"chunk{start:07d}.json"
        if path.is_file():
            continue
        if max_chunks is not None and computed >= max_chunks:
            bar.close()
            return None
        if backend is None:
            from recfuse.llm.transformers_backend import TransformersLLM

            backend = TransformersLLM(llm, batch_size=batch_size)
        prompts = [caption_prompt(t) for t in texts[start : start + chunk_items]]
        gens = backend.generate(prompts, max_tokens=max_tokens, temperature=0.0)
        write_json(path, {"captions": [g.text.strip() for g in gens]})
        computed += 1
        bar.update(len(prompts))
    bar.close()
    captions: list[str] = []
    for start in starts:
        captions.extend(json.loads((chunk_dir / f"chunk{start:07d}.json").read_text())["captions"])
    write_json(final, {"llm": llm, "max_tokens": max_tokens, "captions": captions})
    return captions


def caption_items(
    texts: Sequence[str],
    items: np.ndarray,
    dataset: str,
    llm: str = "smollm2",
    encoder: str = "minilm",
    store: FeatureStore | None = None,
    max_tokens: int = 32,
    batch_size: int = 8,
    max_chunks: int | None = None,
    progress: bool = True,
    device: str = "cpu",
    encode: bool = True,
) -> CaptionResult:
    """Caption the given item indices of a catalogue and encode the captions with ``encoder``.

    ``device`` other than ``cpu`` generates with `DeviceCaptioner` in chunks of
    ``8 * batch_size`` prompts; ``encode=False`` stops after the captions.
    """
    from recfuse.frozen import locate_model

    store = store or FeatureStore()
    source = locate_model(llm)
    chosen = [texts[i] for i in items]
    folder = caption_folder(
        store, dataset, f"{source.name}-{source.weights_hash()}", chosen, max_tokens
    )
    backend = None if device == "cpu" else DeviceCaptioner(llm, device, batch_size)
    captions = generate_captions(
        chosen,
        folder,
        llm,
        max_tokens,
        batch_size,
        chunk_items=32 if device == "cpu" else 8 * batch_size,
        max_chunks=max_chunks,
        progress=progress,
        backend=backend,
    )
    if captions is None:
        return CaptionResult(np.asarray(items), [], None, folder)
    write_json(folder / "items.json", {"items": [int(i) for i in items]})
    features = extract_features(
        captions,
        encoder,
        f"{dataset}-captions",
        template=f"captions:{folder.name}",
        store=store,
        progress=progress,
    )
    return CaptionResult(np.asarray(items), captions, features, folder)


def cached_captions(dataset: str, store: FeatureStore | None = None) -> CaptionResult | None:
    """The largest finished caption set of ``dataset`` in the store (not yet encoded), if any."""
    store = store or FeatureStore()
    best: CaptionResult | None = None
    for final in sorted((store.root / dataset).glob("captions-*/captions.json")):
        items_path = final.parent / "items.json"
        if not items_path.is_file():
            continue
        items = np.asarray(json.loads(items_path.read_text())["items"], dtype=np.int64)
        if best is None or len(items) > len(best.items):
            captions = list(json.loads(final.read_text())["captions"])
            best = CaptionResult(items, captions, None, final.parent)
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
    return CaptionResult(result.items, result.captions, features, result.folder)


def caption_dataset(
    dataset: str,
    llm: str = "smollm2",
    encoder: str = "minilm",
    template: str | None = None,
    max_items: int | None = None,
    items_of_users: int | None = None,
    seed: int = 0,
    max_tokens: int = 32,
    batch_size: int = 8,
    folder: str | None = None,
    device: str = "cpu",
    encode: bool = True,
) -> CaptionResult:
    """Caption a dataset's items: all, the first ``max_items``, or those of a user sample."""
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
    )
