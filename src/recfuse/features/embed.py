"""`embed`: the one text-to-vector path for short texts (titles, blurbs, reviews, keywords...).

Every part that needs a frozen encoder's vector of a text — CEMG's item features, HiGeMine's
blurbs, reviews and genre names, the leakage audit's MiniLM probe, keywords, knowledge records,
user interests — calls `embed`. It runs the same forward pass and pooling as the layer-feature
extraction (`recfuse.features.extract.pooled_hidden_states`) and caches each text's vector
content-addressed by `text_hash`, so a text embedded once under one recipe is never encoded again,
whichever list, order or caller it arrives in.

Cache layout, inside the `FeatureStore` root (``$RECFUSE_CACHE/features``)::

    _texts/<model>-<recipe key>/<shard>.npz    hashes [M] (text_hash) + vectors [M, d] float32

The recipe key hashes the model name and weights hash, layer, pooling, truncation length and
normalisation. Each call that meets new texts writes one new shard atomically (a killed call
loses only its own shard); shards already read are kept in memory for the process's lifetime.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from recfuse.atomic import atomic_path
from recfuse.data.locate import cache_root
from recfuse.errors import ConfigError
from recfuse.features.store import POOLINGS, FeatureStore, text_hash
from recfuse.frozen import load_frozen, locate_model

#: per cache folder: the shard files read so far and every vector they hold, by text hash
_MEMORY: dict[Path, tuple[set[str], dict[str, np.ndarray]]] = {}


def recipe_folder(
    model: str,
    layer: int,
    pooling: str,
    max_length: int,
    normalize: bool,
    store: FeatureStore | None = None,
) -> Path:
    """The cache folder of one embedding recipe (see the module docstring)."""
    source = locate_model(model)
    recipe = (
        f"{source.name}|{source.weights_hash()}|layer{layer}|{pooling}|len{max_length}"
        f"|norm{int(normalize)}"
    )
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    return (store or FeatureStore()).root / "_texts" / f"{source.name}-{key}"


def legacy_folder(model: str, max_length: int, normalize: bool) -> Path:
    """Where HiGeMine's embedder (``recfuse.classify.embed``, now folded into `embed`) cached
    the same recipe — last layer, mean, normalised — before: read as well, never written, so
    vectors computed then are reused exactly."""
    source = locate_model(model)
    recipe = f"{source.name}|{source.weights_hash()}|mean-last|len{max_length}|norm{int(normalize)}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    return cache_root() / "classify" / "embeddings" / f"{source.name}-{key}"


def _known(folders: Sequence[Path]) -> dict[str, np.ndarray]:
    """Every cached vector of this recipe (reading only shards not read before)."""
    seen, vectors = _MEMORY.setdefault(folders[0], (set(), {}))
    for folder in reversed(folders):  # the recipe's own folder last: its vectors win
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.npz")):
            if str(path) in seen:
                continue
            with np.load(path, allow_pickle=False) as shard:
                vectors.update(zip(shard["hashes"].tolist(), shard["vectors"], strict=True))
            seen.add(str(path))
    return vectors


def _encode(
    texts: list[str],
    model: str,
    layer: int,
    pooling: str,
    max_length: int,
    normalize: bool,
    batch_size: int,
    device: str,
) -> np.ndarray:
    """Encode ``texts`` -> float32 [N, d]. Batches are sorted by text length (longest first),
    so each pads little; pooling is `pooled_hidden_states`' over real tokens."""
    from recfuse.features.extract import pooled_hidden_states, tokenize

    tokenizer, net, _ = load_frozen(model)
    net = net.to(device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    seqs = tokenize(tokenizer, texts, max_length)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out: np.ndarray | None = None
    batches = range(0, len(texts), batch_size)
    for start in tqdm(batches, desc=f"embed {model}", unit="batch", disable=len(batches) < 4):
        idx = order[start : start + batch_size]
        pooled = pooled_hidden_states(net, [seqs[i] for i in idx], pad_id, device, layers=[layer])
        vectors = pooled[0, POOLINGS.index(pooling)]  # [B, d]
        if normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        if out is None:
            out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        out[idx] = vectors.numpy()
    assert out is not None
    return out


def embed(
    texts: Sequence[str],
    model: str = "minilm",
    layer: int = -1,
    pooling: str = "mean",
    *,
    normalize: bool = True,
    max_length: int = 256,
    batch_size: int = 32,
    store: FeatureStore | None = None,
    device: str = "cpu",
    use_cache: bool = True,
) -> np.ndarray:
    """Vectors of ``texts`` from one hidden layer of a frozen model: float32 ``[len(texts), d]``.

    Args:
        texts: the texts, any order, duplicates allowed (row ``i`` is ``texts[i]``'s vector).
        model: anything `recfuse.frozen.locate_model` accepts (``minilm``: d = 384;
            ``smollm2``: d = 576; a local Hugging Face folder).
        layer: hidden-state index: 0 is the embedding output, ``i`` the output of block ``i``,
            negative counts from the last (-1, the default, is the last layer).
        pooling: ``mean`` over the text's real tokens or the ``last`` real token.
        normalize: L2-normalise each vector (rows of unit length: dot product = cosine).
        max_length: tokens kept per text (longer texts are truncated).
        batch_size: texts per forward pass.
        store: the `FeatureStore` whose root holds the cache (default ``$RECFUSE_CACHE/features``).
        device: torch device of the forward passes.
        use_cache: False encodes every text and writes nothing.

    The defaults are the all-MiniLM-L6-v2 sentence-embedding recipe (mean of the last layer,
    normalised). Texts already cached under the same recipe are not encoded again (and when all
    are cached the model is not even loaded); new ones are encoded in one pass and stored.
    """
    texts = [str(t) for t in texts]
    if not texts:
        raise ConfigError("embed: no texts")
    if pooling not in POOLINGS:
        raise ConfigError(f"embed: pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
    if batch_size < 1 or max_length < 1:
        raise ConfigError("embed: batch_size and max_length must be positive")
    args = (model, layer, pooling, max_length, normalize)
    if not use_cache:
        return _encode(texts, *args, batch_size, device)
    folder = recipe_folder(*args, store=store)
    folders = [folder]
    if layer == -1 and pooling == "mean" and store is None:
        folders.append(legacy_folder(model, max_length, normalize))
    known = _known(folders)
    hashes = [text_hash(t) for t in texts]
    missing = sorted({h: t for h, t in zip(hashes, texts, strict=True) if h not in known}.items())
    if missing:
        new = _encode([t for _, t in missing], *args, batch_size, device)
        new_hashes = np.array([h for h, _ in missing])
        name = hashlib.sha256("".join(new_hashes.tolist()).encode()).hexdigest()[:24]
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / f"{name}.npz") as tmp, tmp.open("wb") as fh:
            np.savez(fh, hashes=new_hashes, vectors=new)
        known.update(zip(new_hashes.tolist(), new, strict=True))
        _MEMORY[folder][0].add(str(folder / f"{name}.npz"))
    return np.stack([known[h] for h in hashes]).astype(np.float32, copy=False)


def item_text_vectors(
    dataset: str, path: str | Path | None = None, model: str = "minilm", **kwargs: Any
) -> np.ndarray:
    """A dataset's item-text vectors float32 [n_items, d] (row = item index): `embed` of
    ``load_dataset(dataset).item_texts()``, or the matrix in a ``.npy`` file when ``path`` is
    given (a user's own features). ``kwargs`` go to `embed`."""
    if path:
        return np.load(path, allow_pickle=False).astype(np.float32)
    from recfuse.data import load_dataset

    return embed(load_dataset(dataset).item_texts(), model, **kwargs)
