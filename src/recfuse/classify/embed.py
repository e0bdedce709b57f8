"""Frozen-encoder text embeddings for genre mining, cached content-addressed on disk.

`embed_texts` is the one entry point the rest of `recfuse.classify` uses, so the general feature
store (recfuse.features) can replace it later without touching the classifier. Vectors are the
mean of the last hidden layer over real tokens (the all-MiniLM-L6-v2 recipe), L2-normalized.

Cache: ``$RECFUSE_CACHE/classify/embeddings/<model key>/<content hash>.npz``. The model key hashes
the weight files and the encoding parameters; each file holds the SHA-256 of every text it covers
and their vectors, so any later call reuses every text already embedded, whatever slice it came in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from recfuse.atomic import atomic_path
from recfuse.data.locate import cache_root
from recfuse.frozen import load_frozen, locate_model


def text_hash(text: str) -> str:
    """SHA-256 hex digest of a text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _model_key(model: str, max_length: int, normalize: bool) -> str:
    source = locate_model(model)
    recipe = f"{source.name}|{source.weights_hash()}|mean-last|len{max_length}|norm{int(normalize)}"
    return f"{source.name}-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"


def _cache_folder(model: str, max_length: int, normalize: bool) -> Path:
    return cache_root() / "classify" / "embeddings" / _model_key(model, max_length, normalize)


def _read_cache(folder: Path) -> dict[str, np.ndarray]:
    known: dict[str, np.ndarray] = {}
    for path in sorted(folder.glob("*.npz")):
        with np.load(path, allow_pickle=False) as stored:
            for key, vec in zip(stored["hashes"].tolist(), stored["vectors"], strict=True):
                known[str(key)] = vec
    return known


def _encode(
    texts: list[str], model: str, batch_size: int, max_length: int, normalize: bool
) -> np.ndarray:
    """Encode ``texts`` -> [N, d] float32; batches are length-sorted to keep padding small."""
    import torch

    tokenizer, encoder, _ = load_frozen(model)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out: np.ndarray | None = None
    batches = range(0, len(texts), batch_size)
    for start in tqdm(batches, desc=f"embed {model}", unit="batch", disable=len(batches) < 4):
        idx = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in idx],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            hidden = encoder(**batch).last_hidden_state  # [B, T, d]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # [B, d]
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        if out is None:
            out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
        out[idx] = pooled.numpy()
    assert out is not None
    return out


def embed_texts(
    texts: Sequence[str],
    model: str = "minilm",
    *,
    batch_size: int = 32,
    max_length: int = 256,
    normalize: bool = True,
    use_cache: bool = True,
) -> np.ndarray:
    """Embed texts with a frozen encoder: returns float32 [N, d] (d = 384 for MiniLM).

    ``model`` is anything `recfuse.frozen.locate_model` accepts. Texts already in the cache for
    the same weights and parameters are not encoded again; new ones are added in one new file.
    """
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("embed_texts: no texts")
    if not use_cache:
        return _encode(texts, model, batch_size, max_length, normalize)
    folder = _cache_folder(model, max_length, normalize)
    known = _read_cache(folder) if folder.is_dir() else {}
    hashes = [text_hash(t) for t in texts]
    missing = sorted({h: t for h, t in zip(hashes, texts, strict=True) if h not in known}.items())
    if missing:
        new = _encode([t for _, t in missing], model, batch_size, max_length, normalize)
        new_hashes = np.array([h for h, _ in missing])
        name = hashlib.sha256("".join(new_hashes.tolist()).encode()).hexdigest()[:24]
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / f"{name}.npz") as tmp, tmp.open("wb") as fh:
            np.savez(fh, hashes=new_hashes, vectors=new)
        known.update(zip(new_hashes.tolist(), new, strict=True))
    return np.stack([known[h] for h in hashes]).astype(np.float32)
