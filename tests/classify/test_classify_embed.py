import numpy as np
import pytest

import recfuse.classify.embed as embed


@pytest.mark.slow
def test_embeddings_are_cached_by_content(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path))
    texts = [
        "A dragon guards a mountain of gold.",
        "A cookbook of Sicilian pasta.",
        "Quantum physics for beginners.",
    ]
    first = embed.embed_texts(texts)
    assert first.shape == (3, 384) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert len(list((tmp_path / "classify" / "embeddings").rglob("*.npz"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("cached texts must not be encoded again")

    monkeypatch.setattr(embed, "_encode", refuse)
    again = embed.embed_texts([texts[2], texts[0]])  # a different slice, same content
    assert np.allclose(again, first[[2, 0]])
    monkeypatch.undo()
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path))
    uncached = embed.embed_texts(
        texts, use_cache=False, batch_size=2
    )  # other batching, same vectors
    assert np.allclose(uncached, first, atol=1e-5)
    # related texts are closer than unrelated ones
    pair = embed.embed_texts(["A dragon hoards treasure under a mountain."])
    assert float(pair[0] @ first[0]) > float(pair[0] @ first[1])
