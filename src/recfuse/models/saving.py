"""Saved models: ``model.json`` + ``weights.safetensors``, no pickle anywhere.

A saved model is a folder::

    model.json            class, constructor params, format version, dataset fingerprint,
                          fitted metadata, and where its split and id maps are (relative paths)
    weights.safetensors   every fitted array (EASE's B, ItemKNN's sparse similarities, network
                          weights, a generative model's item codes)

Loading imports the class named in ``model.json`` (only inside the ``recfuse`` package),
rebuilds it from its params, restores the tensors without refitting, and refuses a file of
another format version or data whose fingerprint differs from the one the model was trained on.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from recfuse.atomic import atomic_path, write_json
from recfuse.data.fingerprint import interactions_fingerprint
from recfuse.data.ids import IdMaps
from recfuse.errors import DataError
from recfuse.split import Split

if TYPE_CHECKING:
    from recfuse.data.dataset import Dataset
    from recfuse.models.base import Recommender

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"


def constructor_parameters(cls: type) -> list[str]:
    """Named constructor arguments over the class hierarchy (``self``, ``*args``, ``**kw`` left out)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            sig = inspect.signature(klass.__init__)  # type: ignore[misc]
            for name, p in sig.parameters.items():
                variadic = p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                if name != "self" and not variadic and name not in names:
                    names.append(name)
    return names


def split_fingerprint(split: Split, ids: IdMaps | None) -> str:
    """The dataset fingerprint recomputed from a split's parts (equal to the dataset's)."""
    item_ids = ids.item_ids if ids is not None else range(split.n_items)
    return interactions_fingerprint([split.train, split.valid, split.test], item_ids)


def untie(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors with shared storage (tied weights) kept once: (unique tensors, alias -> name).

    safetensors refuses shared tensors; the aliases go into ``model.json`` and are restored.
    """
    unique: dict[str, torch.Tensor] = {}
    seen: dict[tuple[int, tuple[int, ...], tuple[int, ...]], str] = {}
    tied: dict[str, str] = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach()
        key = (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()))
        if tensor.numel() and key in seen:
            tied[name] = seen[key]
            continue
        seen[key] = name
        unique[name] = tensor.cpu().contiguous()
    return unique, tied


def save_model(
    model: Recommender,
    folder: str | Path,
    ids: IdMaps | None = None,
    split_dir: str | Path | None = None,
    ids_dir: str | Path | None = None,
) -> Path:
    """Write ``model`` (fitted) to ``folder``; see the module docstring for the layout.

    Args:
        ids: raw id maps of the model's data (saved under ``folder/ids`` unless ``ids_dir``).
        split_dir: an existing saved split to point to (a run folder's ``split/``); by default
            the model's split is saved under ``folder/split``.
        ids_dir: an existing saved `IdMaps` folder to point to.
    """
    split = getattr(model, "split_", None)
    if split is None:
        raise DataError(f"{model.name}: fit the model before saving it")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if split_dir is None:
        split_dir = folder / "split"
        split.save(split_dir)
    if ids is None and ids_dir is not None:
        ids = IdMaps.load(ids_dir)
    elif ids is not None and ids_dir is None:
        ids_dir = folder / "ids"
        ids.save(ids_dir)
    tensors, tied = untie(model.fitted_tensors())
    meta = {
        "format_version": FORMAT_VERSION,
        "class": f"{type(model).__module__}:{type(model).__qualname__}",
        "name": model.name,
        "params": model.init_params(),
        "fitted": model.fitted_meta(),
        "dataset_fingerprint": split_fingerprint(split, ids),
        "n_users": split.n_users,
        "n_items": split.n_items,
        "split": os.path.relpath(split_dir, folder),
        "ids": None if ids_dir is None else os.path.relpath(ids_dir, folder),
        "tied": tied,
    }
    try:
        json.dumps(meta)
    except TypeError as exc:
        raise DataError(f"{model.name}: a parameter is not JSON-serialisable ({exc})") from None
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(tensors, str(tmp))
    write_json(folder / MODEL_JSON, meta)  # last: a folder without it is not a saved model
    return folder


def model_folder(path: str | Path) -> Path:
    """``path`` itself when it holds ``model.json``, else ``path/model`` (a run folder)."""
    path = Path(path)
    if (path / MODEL_JSON).is_file():
        return path
    if (path / "model" / MODEL_JSON).is_file():
        return path / "model"
    raise DataError(f"{path}: no saved model here (no {MODEL_JSON}, no model/{MODEL_JSON})")


def read_meta(folder: Path) -> dict[str, Any]:
    meta = json.loads((folder / MODEL_JSON).read_text())
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise DataError(
            f"{folder / MODEL_JSON}: format version {version!r}, this recfuse reads "
            f"{FORMAT_VERSION}; re-save the model with a matching recfuse"
        )
    return meta


def resolve_class(name: str) -> type[Recommender]:
    """The class ``"module:Qualname"`` names; only recfuse's own modules are imported."""
    from recfuse.models.base import Recommender

    module_name, _, qualname = name.partition(":")
    if not (module_name == "recfuse" or module_name.startswith("recfuse.")) or not qualname:
        raise DataError(f"model class {name!r} is not a recfuse model")
    cls = getattr(importlib.import_module(module_name), qualname, None)
    if not (isinstance(cls, type) and issubclass(cls, Recommender)):
        raise DataError(f"model class {name!r} is not a recfuse Recommender")
    return cls


def load_model(
    path: str | Path,
    dataset: Dataset | None = None,
    device: str = "cpu",
) -> Recommender:
    """A ready model from a saved folder (or a run folder), with its split and id maps.

    Args:
        path: the model folder, or a run folder with ``model/`` inside.
        dataset: when given, its fingerprint must equal the model's (else `DataError`).
        device: torch device for neural models.
    Returns:
        the model, with ``split_`` (its `Split`) and ``ids_`` (`IdMaps`) set; nothing is refit.
    """
    from recfuse.data.fingerprint import dataset_fingerprint

    folder = model_folder(path)
    meta = read_meta(folder)
    cls = resolve_class(meta["class"])
    split = Split.load(folder / meta["split"])
    ids = IdMaps.load(folder / meta["ids"]) if meta.get("ids") else None
    expected = meta["dataset_fingerprint"]
    found = split_fingerprint(split, ids)
    if found != expected:
        raise DataError(
            f"{folder}: dataset fingerprint mismatch: the model was trained on {expected}, "
            f"its split and id files give {found} (they were changed or swapped)"
        )
    if dataset is not None and (given := dataset_fingerprint(dataset)) != expected:
        raise DataError(
            f"{folder}: dataset fingerprint mismatch: the model was trained on {expected}, "
            f"dataset {dataset.name!r} has {given}; refusing to load it against other data"
        )
    tensors = load_file(str(folder / WEIGHTS), device="cpu")
    for alias, original in (meta.get("tied") or {}).items():
        tensors[alias] = tensors[original]
    model = cls.from_saved(meta["params"], tensors, meta["fitted"])
    model.n_items_ = split.n_items
    model.split_ = split
    model.ids_ = ids if ids is not None else IdMaps.identity(split.n_users, split.n_items)
    model.restore(tensors, meta["fitted"], split, torch.device(device))
    model.fingerprint_ = expected
    return model
