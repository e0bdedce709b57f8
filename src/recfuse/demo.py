"""`recfuse demo` / `make demo`: the DFF study's fast preset on MicroLens-50k with MiniLM.

From a cold cache it extracts MiniLM's 7 layers for the sampled users' items, trains every arm
once under a small time budget and prints the results table and the verdicts. The fast preset
subsamples users (it says how many) and trains one seed; the full preset is the benchmark.
"""

from __future__ import annotations

import os
import time


def run_demo(full: bool = False) -> None:
    """Run the fast (or full) DFF study on microlens-50k with MiniLM and print where it went."""
    import torch

    from recfuse.studies.dff import PRESETS, run_study

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    preset = "full" if full else "fast"
    seeds = 3 if full else 1
    budget = PRESETS[preset]
    started = time.perf_counter()
    print(
        f"recfuse demo: DFF study, preset {preset!r} on microlens-50k with MiniLM — a random "
        f"subsample of {budget.max_users} users (not all 50,000), {seeds} seed(s), at most "
        f"{budget.max_seconds:.0f} s of training per model. `recfuse demo --full` runs the "
        f"benchmark preset.",
        flush=True,
    )
    folder = run_study(
        dataset="microlens-50k",
        model="minilm",
        seeds=seeds,
        preset=preset,
        backbone="sasrec",
        workers=2,
    )
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; run folder: {folder}")
