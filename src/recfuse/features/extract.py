"""Extract every layer's hidden states of a frozen model for item texts, pooled, into a store.

For each item text the model runs once with ``output_hidden_states=True``; the embedding output
and every block's output are pooled two ways — the mean over the item's tokens (padding
excluded) and the last real token — and stored as float32 matrices [n_items, d].

Texts are sorted by token length so each batch pads little. The sorted items are cut into chunks;
each finished chunk is saved atomically under ``chunks/``, so a killed extraction resumes with
the next missing chunk and never recomputes one that is present. When every chunk is there, the
per-(layer, pooling) matrices are assembled in item order and the manifest is written last.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from recfuse.atomic import atomic_path, write_json
from recfuse.errors import ConfigError
from recfuse.features.store import POOLINGS, FeatureSet, FeatureStore, matrix_name, texts_hash
from recfuse.frozen import load_frozen, locate_model

FORMAT_VERSION = 1


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether the CPU has native bfloat16 matmuls (AVX512-BF16 or AMX); None if unknown.

    Without them bfloat16 autocast is emulated: on this project's AVX2-only machine it ran
    MiniLM 5x and SmolLM2 5x slower than float32 (docs/results/efficiency.md, section 5).
    """
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def extraction_identity(
    model: str,
    texts: Sequence[str],
    template: str | None,
    max_length: int,
    dtype: str = "float32",
) -> dict[str, Any]:
    """Everything the stored matrices depend on; its hash names the feature set."""
    source = locate_model(model)
    # float32 sets keep the identity (and the cache key) they had before dtype existed
    extra = {} if dtype == "float32" else {"dtype": dtype}
    return extra | {
        "format": FORMAT_VERSION,
        "model": source.name,
        "weights_hash": source.weights_hash(),
        "kind": source.kind,
        "template": template or "<dataset default>",
        "text_hash": texts_hash(texts),
        "n_items": len(texts),
        "max_length": max_length,
        "poolings": list(POOLINGS),
    }


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to ``max_length``; an empty result becomes one EOS token
    (a decoder tokenizer gives no token for an empty text, and pooling needs at least one)."""
    ids = tokenizer(list(texts), truncation=True, max_length=max_length).input_ids
    fallback = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return [list(seq) if len(seq) else [int(fallback)] for seq in ids]


@torch.inference_mode()
def pooled_hidden_states(
    model: Any,
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    device: str = "cpu",
    dtype: str = "float32",
    layers: Sequence[int] | None = None,
) -> torch.Tensor:
    """Pooled hidden states of one batch: [n_layers, 2 (mean, last), B, d], float32.

    ``layers`` picks hidden-state indices (negative from the last; default: all, and then
    ``n_layers`` is the embedding output plus every block).

    Right padding: real tokens come first, so with a causal model their states do not depend
    on the padding, and the last real token sits at ``length - 1``. ``dtype="bfloat16"`` runs
    the matmuls under bfloat16 autocast (about 2x the fp32 rate on CPUs with AVX512-BF16/AMX);
    the pooling stays in float32.
    """
    with torch.autocast(torch.device(device).type, dtype=DTYPES[dtype], enabled=dtype != "float32"):
        return _pooled(model, seqs, pad_id, device, layers)


def _pooled(
    model: Any,
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    device: str,
    layers: Sequence[int] | None = None,
) -> torch.Tensor:
    lengths = torch.tensor([len(s) for s in seqs])
    width = int(lengths.max())
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    ids, mask, lengths = ids.to(device), mask.to(device), lengths.to(device)
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    states = out.hidden_states
    chosen = states if layers is None else [states[i] for i in layers]
    hidden = torch.stack(chosen).float()  # [L, B, T, d]
    weights = mask[None, :, :, None].to(hidden.dtype)
    mean = (hidden * weights).sum(2) / lengths[None, :, None].to(hidden.dtype)
    last = hidden[:, torch.arange(len(seqs), device=hidden.device), lengths - 1]
    return torch.stack([mean, last], dim=1).float().cpu()


def extract_features(
    texts: Sequence[str],
    model: str = "minilm",
    dataset: str = "custom",
    template: str | None = None,
    store: FeatureStore | None = None,
    batch_size: int = 32,
    chunk_items: int = 1024,
    max_length: int = 128,
    max_chunks: int | None = None,
    progress: bool = True,
    device: str = "cpu",
    dtype: str = "float32",
    batch_tokens: int | None = None,
) -> FeatureSet:
    """Extract (or reuse) all layers' pooled hidden states of ``model`` for ``texts``.

    Args:
        texts: one text per item index.
        model: ``minilm``, ``smollm2`` or a local Hugging Face model folder.
        dataset: label of the folder the set lives in (texts are hashed separately).
        template: the template that built ``texts`` (recorded in the manifest and the key).
        batch_size: texts per forward pass.
        chunk_items: items per saved partial result (the unit of resumption).
        max_length: tokens kept per text.
        max_chunks: compute at most this many missing chunks, then return the unfinished set
            (a time budget, and an interruption for tests); ``None`` runs to the end.
        device: torch device of the forward passes (``cuda`` on a GPU machine).
        dtype: ``float32`` or ``bfloat16`` (autocast; a separate feature set, see
            docs/results/efficiency.md for its distance from float32).
        batch_tokens: if set, a batch holds up to ``batch_tokens`` padded tokens instead of
            ``batch_size`` texts, so short texts go in larger batches.
    Returns:
        the `FeatureSet`; ``complete`` is False only when ``max_chunks`` stopped it early.
    """
    if batch_size < 1 or chunk_items < 1 or max_length < 1:
        raise ConfigError("batch_size, chunk_items and max_length must be positive")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype == "bfloat16" and device == "cpu" and cpu_has_bf16() is False:
        warnings.warn(
            "extract_features: dtype bfloat16 on a CPU without AVX512-BF16/AMX is emulated and "
            "was measured ~5x slower than float32; use dtype='float32' here",
            stacklevel=2,
        )
    store = store or FeatureStore()
    identity = extraction_identity(model, texts, template, max_length, dtype)
    fset = store.feature_set(dataset, identity["model"], identity)
    if fset.complete:
        return fset
    tokenizer, net, _ = load_frozen(model)
    net = net.to(device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    fset.chunk_dir.mkdir(parents=True, exist_ok=True)
    write_json(fset.folder / "identity.json", identity)
    plan = _load_or_make_plan(fset, tokenizer, texts, max_length, chunk_items)
    seqs = tokenize(tokenizer, texts, max_length)
    chunks: list[list[int]] = plan["chunks"]
    missing = [c for c in range(len(chunks)) if not _chunk_path(fset, c).is_file()]
    done_items = sum(len(chunks[c]) for c in range(len(chunks)) if c not in set(missing))
    bar = tqdm(
        total=len(texts),
        initial=done_items,
        desc=f"extract {identity['model']}",
        unit="item",
        disable=not progress,
    )
    started = time.perf_counter()
    for computed, chunk in enumerate(missing):
        if max_chunks is not None and computed >= max_chunks:
            bar.close()
            return fset
        parts = []
        for batch in _batches([seqs[i] for i in chunks[chunk]], batch_size, batch_tokens):
            parts.append(pooled_hidden_states(net, batch, pad_id, device, dtype))
            bar.update(len(batch))
        pooled = torch.cat(parts, dim=2).numpy()  # [L, 2, chunk, d]
        with atomic_path(_chunk_path(fset, chunk)) as tmp, tmp.open("wb") as fh:
            np.save(fh, pooled)
    bar.close()
    _assemble(fset, identity, chunks, len(texts), dataset, time.perf_counter() - started)
    return fset


def _batches(
    seqs: list[list[int]], batch_size: int, batch_tokens: int | None
) -> list[list[list[int]]]:
    """Consecutive batches of length-sorted ``seqs``: ``batch_size`` texts each, or as many as fit
    in ``batch_tokens`` padded tokens (at least one)."""
    if batch_tokens is None:
        return [seqs[lo : lo + batch_size] for lo in range(0, len(seqs), batch_size)]
    out: list[list[list[int]]] = []
    for seq in seqs:
        if out and (len(out[-1]) + 1) * max(len(seq), *map(len, out[-1])) <= batch_tokens:
            out[-1].append(seq)
        else:
            out.append([seq])
    return out


def _chunk_path(fset: FeatureSet, chunk: int) -> Path:
    return fset.chunk_dir / f"chunk{chunk:05d}.npy"


def _load_or_make_plan(
    fset: FeatureSet, tokenizer: Any, texts: Sequence[str], max_length: int, chunk_items: int
) -> dict[str, Any]:
    """The length-sorted chunk plan; a resumed extraction keeps the plan it started with."""
    import json

    plan_path = fset.chunk_dir / "plan.json"
    if plan_path.is_file():
        return json.loads(plan_path.read_text())
    lengths = np.array([len(s) for s in tokenize(tokenizer, texts, max_length)])
    order = np.argsort(lengths, kind="stable")
    chunks = [order[lo : lo + chunk_items].tolist() for lo in range(0, len(order), chunk_items)]
    plan = {"chunk_items": chunk_items, "chunks": chunks}
    write_json(plan_path, plan)
    return plan


def _assemble(
    fset: FeatureSet,
    identity: dict[str, Any],
    chunks: list[list[int]],
    n_items: int,
    dataset: str,
    seconds: float,
) -> None:
    """Gather chunk results into one matrix per (layer, pooling) in item order, then finish."""
    arrays = [np.load(_chunk_path(fset, c), mmap_mode="r") for c in range(len(chunks))]
    n_layers, _, _, dim = arrays[0].shape
    names = {}
    for layer in range(n_layers):
        for p, pooling in enumerate(POOLINGS):
            matrix = np.empty((n_items, dim), dtype=np.float32)
            for items, arr in zip(chunks, arrays, strict=True):
                matrix[np.asarray(items, dtype=np.int64)] = arr[layer, p]
            fset.save_matrix(layer, pooling, matrix)
            names[matrix_name(identity["model"], layer, pooling)] = {
                "file": fset.path_of(layer, pooling).name,
                "shape": [n_items, int(dim)],
            }
    del arrays
    manifest = dict(identity, dataset=dataset, n_layers=int(n_layers), dim=int(dim))
    manifest.update(matrices=names, last_run_seconds=round(seconds, 2))
    fset.finish(manifest)
    shutil.rmtree(fset.chunk_dir, ignore_errors=True)


def dataset_features(
    dataset: str,
    model: str = "minilm",
    template: str | None = None,
    store: FeatureStore | None = None,
    max_items: int | None = None,
    **kwargs: Any,
) -> FeatureSet:
    """`extract_features` for a named dataset's item texts (optionally its first ``max_items``)."""
    from recfuse.data import load_dataset

    texts = load_dataset(dataset).item_texts(template)
    if max_items is not None:
        texts = texts[:max_items]
    label = dataset if max_items is None else f"{dataset}-first{max_items}"
    return extract_features(texts, model, label, template, store, **kwargs)
