"""Bounded LLM labelled check of the I2I discriminator: n validation pairs vs n random non-edges.

Usage: python benchmarks/i2i_llm_check.py [--dataset amazon-scientific] [--n 40] [--threshold 0.5]
Teacher: SmolLM2-135M-Instruct (transformers backend), P(yes) of the fenced yes/no prompt of
`recfuse.augment.teachers.LLMTeacher`; answers are cached in the LLM SQLite cache, so a rerun
costs no model call. Prints AUC, precision and recall of "keep if P(yes) >= threshold", wall and
CPU seconds and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from recfuse.augment.discriminator import labelled_check
from recfuse.augment.teachers import LLMTeacher
from recfuse.data import load_dataset
from recfuse.llm.backend_spec import BackendSpec
from recfuse.split import make_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="amazon-scientific")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_dataset(args.dataset)
    split = make_split(data, "leave_one_out", seed=args.seed)
    titles = data.items["title"].fillna("").astype(str).tolist()
    backend = BackendSpec(model="smollm2", batch_size=8, threads=1)
    teacher = LLMTeacher(backend, titles, split, f"i2i-check-{args.dataset}", name="smollm2",
                         recent=5)  # fmt: skip
    started, cpu = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(args.seed)
    out: dict[str, object] = dict(labelled_check(teacher, split, args.threshold, rng, args.n))
    out.update(wall_s=round(time.perf_counter() - started, 1),
               cpu_s=round(time.process_time() - cpu, 1), load=os.getloadavg(),
               prompts=teacher.calls, last_job=teacher.report)  # fmt: skip
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
