"""Every DFF result in one go on a GPU machine: captions, features, the four studies.

``python -m recfuse.studies.dff_device --out OUT`` captions every item of each dataset with
SmolLM2 on the GPU, extracts all layers of MiniLM and SmolLM2 for every item and for the
captions on the GPU, then runs the DFF study for each (dataset, model) as parallel processes
whose workers train on the GPU. A deadline stops what is left (each finished arm is on disk), and
the run folders and captions are packed into ``OUT``. The same study code runs on the CPU; this
entry point only chooses devices, budgets and parallelism.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path


def log(msg: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.1f} s] {msg}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--datasets", default="microlens-50k,amazon-scientific")
    parser.add_argument("--models", default="minilm,smollm2")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--deadline", type=float, default=540.0, help="seconds for everything")
    parser.add_argument("--workers", type=int, default=4, help="training processes per study")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--preset", default="full")
    parser.add_argument("--max-users", default="microlens-50k=10000")
    parser.add_argument("--caption-items", type=int, default=None, help="smoke: first N items")
    parser.add_argument("--runs", default="runs")
    args = parser.parse_args()
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extras = Path(args.runs) / "dff-device-extras"  # captions and logs, packed with the runs
    extras.mkdir(parents=True, exist_ok=True)
    datasets, models = args.datasets.split(","), args.models.split(",")
    max_users = dict(kv.split("=") for kv in args.max_users.split(",") if kv)

    from recfuse.features.captions import cached_captions, caption_dataset, encode_captions
    from recfuse.features.extract import dataset_features
    from recfuse.frozen import locate_model

    for model in models:
        log(f"{model}: weights hash {locate_model(model).weights_hash()}", started)
    for ds in datasets:
        result = caption_dataset(
            ds, device=args.device, batch_size=512, encode=False, max_items=args.caption_items
        )
        log(f"captions {ds}: {len(result.items)} items in {result.folder}", started)
        shutil.copy(result.folder / "captions.json", extras / f"{ds}.{result.folder.name}.json")
        shutil.copy(result.folder / "items.json", extras / f"{ds}.{result.folder.name}.items.json")
    for ds in datasets:
        for model in models:
            fset = dataset_features(ds, model, device=args.device, batch_size=256, chunk_items=8192)
            log(f"features {ds} {model}: {fset.folder}", started)
            cached = cached_captions(ds)
            assert cached is not None
            encode_captions(cached, ds, model, device=args.device, progress=False)
            log(f"caption features {ds} {model}", started)

    procs = []
    for model in models:
        for ds in datasets:
            sets = [f"datasets=[{ds}]", f"model={model}", f"seeds={list(range(args.seeds))}",
                    f"output={args.runs}/dff", f"workers={args.workers}",
                    f"train.device={args.device}"]  # fmt: skip
            if model == "smollm2":
                sets += ["sweep_stride=3", "replace_sweep=false"]
            if ds in max_users:
                sets.append(f"max_users={max_users[ds]}")
            code = (
                "import torch; torch.set_num_threads(1)\n"
                "from recfuse.runs.study import load_study_config, run_study\n"
                "from recfuse.studies.dff.study import DFFStudy\n"
                f"config = load_study_config(DFFStudy, preset={args.preset!r}, overrides={sets!r})\n"
                "run_study(DFFStudy(progress=False), config, progress=False)\n"
            )
            log_path = extras / f"study-{ds}-{Path(model).name}.log"
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", code],
                    stdout=log_path.open("w"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"),
                )
            )
            log(f"study {ds} {model} started (pid {procs[-1].pid})", started)
    while any(p.poll() is None for p in procs):
        if time.perf_counter() - started > args.deadline:
            log("deadline: stopping the studies that are still running", started)
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            break
        time.sleep(2)
    log(f"exit codes {[p.poll() for p in procs]}", started)
    # one archive per study folder (each stays under the 16 MB a returned file may have)
    for folder in sorted((Path(args.runs) / "dff").iterdir()):
        with tarfile.open(out / f"{folder.name}.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname=f"dff/{folder.name}")
    with tarfile.open(out / "extras.tar.gz", "w:gz") as tar:
        tar.add(extras, arcname="dff-device-extras")
    summary = {"seconds": time.perf_counter() - started, "exit": [p.poll() for p in procs]}
    (out / "summary.json").write_text(json.dumps(summary))
    log("packed", started)


if __name__ == "__main__":
    main()
