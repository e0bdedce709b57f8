"""Captions through a selectable LLM backend: the real SmolLM2 run by CTranslate2 writes
non-empty captions, reruns ask the model nothing, and each backend's captions are kept apart."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from recfuse.features.captions import caption_backend, caption_folder, caption_items
from recfuse.features.store import FeatureStore
from recfuse.llm.cache import LLMCache

ITEMS = [
    "Title: Digital Caliper 0-6 inch. Description: Stainless steel vernier caliper with an LCD "
    "display, measures inside, outside, depth and step in inches or millimetres.",
    "Title: Nitrile Exam Gloves, 100 count. Description: Powder-free, latex-free disposable "
    "gloves for laboratory and medical use.",
    "Title: Borosilicate Glass Beaker Set. Description: Five graduated beakers, 50 to 1000 ml, "
    "heat resistant, for chemistry labs.",
]


def test_backend_is_part_of_the_caption_key(tmp_path: Any) -> None:
    store = FeatureStore(tmp_path)
    folders = {
        kind: caption_folder(store, "toy", "smollm2-abc", ITEMS, 32, backend=kind)
        for kind in ("transformers", "ctranslate2", "torch-device")
    }
    # the float32 reference decoders (CPU or GPU) keep the key captions had before the backend
    # was selectable; CTranslate2's int8 captions get their own
    assert folders["transformers"] == caption_folder(store, "toy", "smollm2-abc", ITEMS, 32)
    assert folders["torch-device"] == folders["transformers"]
    assert folders["ctranslate2"] != folders["transformers"]


def test_cached_captions_can_be_asked_for_one_backend(tmp_path: Any) -> None:
    import json

    from recfuse.features.captions import cached_captions

    store = FeatureStore(tmp_path)
    sets = {"old": (None, 3), "ct2": ("ctranslate2", 5), "gpu": ("torch-device", 2)}
    for name, (kind, n) in sets.items():
        folder = store.root / "toy" / f"captions-{name}"
        folder.mkdir(parents=True)
        (folder / "captions.json").write_text(json.dumps({"captions": [name] * n}))
        meta: dict[str, Any] = {"items": list(range(n))} | ({"backend": kind} if kind else {})
        (folder / "items.json").write_text(json.dumps(meta))
    assert cached_captions("toy", store).captions == ["ct2"] * 5  # the largest of any
    assert cached_captions("toy", store, "ctranslate2").captions == ["ct2"] * 5
    # a set without a recorded backend is a transformers set; the GPU's counts as the same family
    assert cached_captions("toy", store, "transformers").captions == ["old"] * 3
    assert cached_captions("toy", store, "torch-device").captions == ["old"] * 3
    assert cached_captions("toy", store).backend == "ctranslate2"  # the study's note names it
    assert cached_captions("toy", store, "transformers").backend == "transformers"


def test_unknown_backend_is_refused() -> None:
    from recfuse.errors import ConfigError
    from recfuse.features.cli import app

    with pytest.raises(ConfigError):
        caption_backend("llamacpp")
    result = CliRunner().invoke(app, ["captions", "--backend", "bogus"])
    assert result.exit_code != 0 and "--backend" in result.output


@pytest.mark.slow
def test_ctranslate2_captions_of_real_smollm2_are_cached(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ctranslate2")
    from recfuse.llm.ctranslate2_backend import CTranslate2LLM

    asked: list[int] = []
    generate = CTranslate2LLM.generate

    def counting(self: CTranslate2LLM, prompts: Any, params: Any = None) -> Any:
        asked.append(len(prompts))
        return generate(self, prompts, params)

    monkeypatch.setattr(CTranslate2LLM, "generate", counting)
    store, cache = FeatureStore(tmp_path / "features"), LLMCache(tmp_path / "llm.sqlite")
    items = np.arange(len(ITEMS))

    def run() -> Any:
        return caption_items(ITEMS, items, "toy", store=store, encode=False, progress=False,
                             backend="ctranslate2", threads=1, cache=cache)  # fmt: skip

    first = run()
    assert sum(asked) == len(ITEMS)
    assert len(first.captions) == len(ITEMS) and all(c.strip() for c in first.captions)
    assert first.features is None  # encode=False stops after the captions
    assert first.backend == "ctranslate2"
    assert json.loads((first.folder / "captions.json").read_text())["backend"] == "ctranslate2"
    kind, llm_id = caption_backend("ctranslate2").identity()
    assert kind == "ctranslate2" and llm_id.endswith("-ct2-int8")
    assert first.folder == caption_folder(store, "toy", llm_id, ITEMS, 32, backend=kind)
    print("ctranslate2 captions:", first.captions)  # shown with -s

    asked.clear()
    assert run().captions == first.captions and asked == []  # captions.json is read back
    (first.folder / "captions.json").unlink()
    assert run().captions == first.captions and asked == []  # every answer from the LLM cache

    # the transformers reference looks for its own keys: nothing of ctranslate2's answers it
    reference = caption_backend("transformers")
    assert reference.identity()[0] == "transformers"
    from recfuse.features.captions import CAPTION_TEMPLATE
    from recfuse.llm.base import GenerationParams
    from recfuse.llm.job import LLMJob
    from recfuse.llm.sources import PromptRecord

    records = [PromptRecord(str(i), {"item": t}) for i, t in enumerate(ITEMS)]
    params = GenerationParams(max_tokens=32, temperature=0.0)
    job = LLMJob("ref", records, CAPTION_TEMPLATE, reference, params, cache=cache, progress=False)
    assert cache.done_keys([item.key for _, item in job.plan()]) == set()
