"""Load frozen models (eval mode, no gradients) through transformers, with a dense cache for GGUF.

GGUF weights are dequantized on every load (~20 s for SmolLM2); the first load saves a dense copy
under the recfuse cache, which later loads read in well under a second.
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from recfuse.data.locate import cache_root
from recfuse.frozen.locate import ModelSource, locate_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _dense_folder(source: ModelSource) -> Path:
    return cache_root() / "models" / f"{source.name}-{source.weights_hash()}"


def _materialize_gguf(source: ModelSource) -> Path:
    """Dequantize a GGUF once into a dense safetensors folder; return that folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _dense_folder(source)
    if (target / "config.json").is_file():
        return target
    assert source.gguf_file is not None
    model = AutoModelForCausalLM.from_pretrained(source.folder, gguf_file=source.gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(source.folder, gguf_file=source.gguf_file)
    # save_pretrained refuses GGUF-quantized models until the quantization config is dropped.
    quantizer: Any = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, target)  # atomic: a killed save leaves only the tmp folder
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
    return target


def model_folder(source: ModelSource) -> Path:
    """A folder that transformers can load without ``gguf_file`` (dense copy for GGUF)."""
    return _materialize_gguf(source) if source.gguf_file else source.folder


@lru_cache(maxsize=4)
def load_frozen(name: str, causal_lm: bool = False) -> tuple[Any, Any, ModelSource]:
    """Return ``(tokenizer, model, source)`` with the model in eval mode and frozen.

    ``causal_lm`` loads the LM head too (for generation and scoring); otherwise the bare
    backbone, enough for hidden states.
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    source = locate_model(name)
    folder = model_folder(source)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    loader = AutoModelForCausalLM if causal_lm else AutoModel
    model = loader.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return tokenizer, model, source
