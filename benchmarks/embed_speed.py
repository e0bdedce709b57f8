"""Speed of `recfuse.features.embed` on a few thousand short texts: cold cache, then warm.

    python benchmarks/embed_speed.py [--n 3000] [--threads 1]

Texts are MicroLens-50k / ml-100k item titles (short, like keywords or interests). Prints the
cold (encode + write) and warm (read shard, no model) seconds; the cache is a fresh temp folder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dataset", default="ml-100k")
    args = parser.parse_args()
    os.environ["RECFUSE_CACHE"] = tempfile.mkdtemp(prefix="embed-speed-")
    import torch

    torch.set_num_threads(args.threads)
    import recfuse.features.embed as embed_module
    from recfuse.data import load_dataset
    from recfuse.frozen import load_frozen

    texts = load_dataset(args.dataset).item_texts()
    while len(texts) < args.n:  # ml-100k has 1,682 titles: add a variant of each
        texts = texts + [f"{t} (again)" for t in texts]
    texts = texts[: args.n]
    load_frozen("minilm")  # model load is not part of the timing
    start = time.perf_counter()
    cold = embed_module.embed(texts)
    cold_s = time.perf_counter() - start
    embed_module._MEMORY.clear()  # warm from disk, as a new process would be
    start = time.perf_counter()
    warm = embed_module.embed(texts)
    warm_s = time.perf_counter() - start
    assert (cold == warm).all()
    mean_chars = sum(map(len, texts)) / len(texts)
    print(
        f"{len(texts)} texts (mean {mean_chars:.0f} chars), MiniLM, {args.threads} thread(s): "
        f"cold {cold_s:.1f} s ({len(texts) / cold_s:.0f} texts/s), warm {warm_s:.3f} s"
    )


if __name__ == "__main__":
    main()
