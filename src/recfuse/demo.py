"""`recfuse demo` / `make demo`: the DFF study's fast preset on MicroLens-50k with MiniLM.

From a cold cache it extracts MiniLM's 7 layers for the sampled users' items, trains every arm
once under a small time budget and prints the results table and the verdicts. The fast preset
subsamples users (it says how many) and trains one seed, so its verdicts say "not tested: 1
seed(s)"; the full preset (3 seeds) is the benchmark.
"""

from __future__ import annotations

import os
import time


def run_demo(full: bool = False) -> None:
    """Run the fast (or full) DFF study on microlens-50k with MiniLM and print where it went."""
    import torch

    from recfuse.runs.study import default_folder, load_study_config, run_study
    from recfuse.studies.dff.study import DFFStudy

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    preset = "full" if full else "fast"
    seeds = [0, 1, 2] if full else [0]
    config = load_study_config(
        DFFStudy,
        preset=preset,
        overrides=["datasets=[microlens-50k]", "model=minilm", f"seeds={seeds}", "workers=2"],
    )
    started = time.perf_counter()
    print(
        f"recfuse demo: DFF study, preset {preset!r} on microlens-50k with MiniLM — a random "
        f"subsample of {config.max_users} users (not all 50,000), {len(seeds)} seed(s), at most "
        f"{config.train.max_seconds:.0f} s of training per model. `recfuse demo --full` runs the "
        f"benchmark preset.",
        flush=True,
    )
    study = DFFStudy()
    run_study(study, config)
    folder = default_folder(study, config)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; study folder: {folder}")
