"""Bounded LLM labelled check of the I2I discriminator: n validation pairs vs n random non-edges.

Usage:
  python benchmarks/i2i_llm_check.py [--dataset amazon-scientific] [--n 40] [--threshold 0.5]
  python benchmarks/i2i_llm_check.py --backends local,http --base-url http://127.0.0.1:8011/v1

Teacher: SmolLM2-135M-Instruct, P(yes) of the fenced yes/no prompt of
`recfuse.augment.teachers.LLMTeacher`. ``local`` is CTranslate2 float32 in this process;
``http`` is any OpenAI-compatible endpoint (e.g. ``recfuse llm serve``, the transformers
backend). Every backend judges the same pairs (same seed), so with two backends the script also
reports how closely their P(yes) agree. Answers are cached in the LLM SQLite cache (keyed by
backend), so a rerun costs no model call. Prints one JSON line per backend: AUC, precision and
recall of "keep if P(yes) >= threshold", wall and CPU seconds, the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from recfuse.augment.discriminator import labelled_check
from recfuse.augment.teachers import LLMTeacher
from recfuse.data import load_dataset
from recfuse.llm.backend_spec import BackendSpec, job_threads
from recfuse.split import make_split


class Recording:
    """A teacher that keeps every score it returns (to compare backends on the same pairs)."""

    def __init__(self, teacher: LLMTeacher) -> None:
        self.teacher, self.name, self.scores = teacher, teacher.name, []

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        out = self.teacher.score(users, items)
        self.scores.append(out)
        return out


def backend_spec(kind: str, base_url: str | None) -> BackendSpec:
    if kind == "http":
        if not base_url:
            raise SystemExit("--backends http needs --base-url (e.g. http://127.0.0.1:8011/v1)")
        return BackendSpec(kind="http", base_url=base_url, model="smollm2", concurrency=8)
    return BackendSpec(
        model="smollm2", batch_size=16, compute_type="float32", threads=job_threads()
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="amazon-scientific")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backends", default="local", help="comma-separated: local, http")
    parser.add_argument("--base-url", default=None)
    args = parser.parse_args()
    data = load_dataset(args.dataset)
    split = make_split(data, "leave_one_out", seed=args.seed)
    titles = data.items["title"].fillna("").astype(str).tolist()
    scores: dict[str, np.ndarray] = {}
    for kind in args.backends.split(","):
        spec = backend_spec(kind, args.base_url)
        teacher = LLMTeacher(spec, titles, split, f"i2i-check-{args.dataset}-{kind}",
                             name=f"smollm2-{kind}", recent=5)  # fmt: skip
        recording = Recording(teacher)
        started, cpu = time.perf_counter(), time.process_time()
        rng = np.random.default_rng(args.seed)
        out: dict[str, Any] = {"backend": kind}
        out.update(labelled_check(recording, split, args.threshold, rng, args.n))
        out.update(wall_s=round(time.perf_counter() - started, 1),
                   cpu_s=round(time.process_time() - cpu, 1), load=os.getloadavg(),
                   prompts=teacher.calls, last_job=teacher.report)  # fmt: skip
        scores[kind] = np.concatenate(recording.scores)
        print(json.dumps(out, default=str), flush=True)
    if len(scores) == 2:
        a, b = scores.values()
        print(json.dumps({"agreement": {
            "pearson": float(np.corrcoef(a, b)[0, 1]), "max_abs_diff": float(np.abs(a - b).max()),
            "same_side_of_threshold": float(np.mean((a >= args.threshold) == (b >= args.threshold))),
        }}))  # fmt: skip


if __name__ == "__main__":
    main()
