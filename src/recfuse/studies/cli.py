"""`recfuse study NAME ...`: one command per study, each a thin typer ``main``.

Every study takes ``--preset NAME``, ``--config FILE`` (YAML) and ``--set key=value``
(repeatable), layered as defaults ← preset ← file ← ``--set`` ← explicit options, plus the
options it always had (``--seeds``, ``--out``, ...), which map onto its config. This module
imports no study (and no torch) until a command runs, so ``recfuse --help`` stays fast.

A new study: write ``recfuse/studies/NAME.py`` with a `recfuse.runs.study.Study` subclass and a
typer-style ``main``, and add it to `STUDIES` (or add a lazy command here like the ones below).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import typer

# study name -> module with a typer-style ``main`` (imported when the CLI is built); the five
# studies below are registered lazily instead. A module that is not present yet is skipped.
STUDIES: dict[str, str] = {}

app = typer.Typer(no_args_is_help=True)

PRESET = typer.Option(None, "--preset", help="A named preset of the study (see its docs).")
CONFIG = typer.Option(None, "--config", help="YAML file with config keys (layered on the preset).")
SET = typer.Option(
    [], "--set", help="Override a config key, e.g. --set train.epochs=5 (repeatable)."
)


def run(
    target: str,
    preset: str | None,
    config: Path | None,
    sets: list[str],
    options: dict[str, Any],
    **study_kwargs: Any,
) -> Any:
    """Import ``module:Class``, layer its config and run it on the skeleton.

    ``options`` hold the explicit legacy options (a None value there means "set to null").
    """
    import json

    from recfuse.runs.study import load_study_config, run_study

    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    explicit = [f"{key}={json.dumps(value)}" for key, value in options.items()]
    cfg = load_study_config(cls, preset=preset, path=config, overrides=[*sets, *explicit])
    return run_study(cls(**study_kwargs), cfg)


def _csv(text: str | None) -> list[str] | None:
    """Comma-separated names; an option not given (or empty) stays None."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _echo_verdicts(summary: Any) -> None:
    for v in summary.verdicts:
        typer.echo(f"- {v.line()}")


def _seeds(n: int | None, first: int = 0) -> list[int] | None:
    return None if n is None else list(range(first, first + n))


def _budget(seconds: float | None) -> float | None:
    """Legacy ``--max-seconds``: 0 or less meant "no time cap" (a JSON null)."""
    return None if seconds is None or seconds > 0 else float("nan")


def _options(**pairs: Any) -> dict[str, Any]:
    out = {k: v for k, v in pairs.items() if v is not None}
    for key, value in list(out.items()):
        if isinstance(value, float) and value != value:  # NaN marks an explicit null
            out[key] = None
    return out


@app.command("dff")
def dff(
    dataset: str = typer.Option(None, help="Dataset (default microlens-50k)."),
    model: str = typer.Option(None, help="Frozen model name or folder (default minilm)."),
    seeds: int = typer.Option(None, min=1, help="Seeds 0..N-1 (default 3)."),
    preset: str = typer.Option("full", help="fast or full."),
    backbone: str = typer.Option(None, help="sasrec or gru4rec."),
    max_users: int = typer.Option(None, help="Random user subsample."),
    out: str = typer.Option(None, help="Folder that holds the study folder (default runs)."),
    workers: int = typer.Option(None, help="Arms trained in parallel processes."),
    sweep_stride: int = typer.Option(None, help="Sweep every n-th layer plus the last."),
    replace_sweep: bool = typer.Option(None, help="Sweep replacement over the layers too."),
    max_seconds: float = typer.Option(None, help="Training-time cap per model (0: none)."),
    device: str = typer.Option(None, help="Training device (cpu, cuda, auto)."),
    config: Path = CONFIG,
    set_: list[str] = SET,
) -> None:
    """DFF: captions vs hidden states, fusion vs replacement, layer by layer."""
    opts = _options(
        datasets=[dataset] if dataset else None, model=model, seeds=_seeds(seeds),
        backbone=backbone, max_users=max_users, output=out, workers=workers,
        sweep_stride=sweep_stride, replace_sweep=replace_sweep,
        **{"train.max_seconds": _budget(max_seconds), "train.device": device},
    )  # fmt: skip
    run("recfuse.studies.dff.study:DFFStudy", preset, config, set_, opts)


@app.command("baselines")
def baselines(
    dataset: str = typer.Option(None, help="Dataset name (default ml-100k)."),
    seed: int = typer.Option(None, help="Seed (default 0)."),
    seeds: int = typer.Option(None, min=1, help="Seeds seed..seed+N-1 (default 1)."),
    max_seconds: float = typer.Option(None, help="Training-time cap per neural model (s)."),
    valid_users: int = typer.Option(None, help="Validation users used for early stopping."),
    threads: int = typer.Option(None),
    out: str = typer.Option(None, help="Folder for the study folder."),
    device: str = typer.Option(None, help="cpu, cuda or auto."),
    models: str = typer.Option(None, help="Comma-separated subset of model names."),
    preset: str = PRESET,
    config: Path = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Every baseline (Pop, ItemKNN, EASE, BPR, SASRec CE/sampled, GRU4Rec), LOO full ranking."""
    first = seed or 0
    opts = _options(
        datasets=[dataset] if dataset else None,
        seeds=_seeds(seeds or (1 if seed is not None else None), first), threads=threads,
        output=out, models=_csv(models),
        **{"train.max_seconds": _budget(max_seconds), "train.valid_users": valid_users,
           "train.device": device},
    )  # fmt: skip
    run("recfuse.studies.baselines:BaselinesStudy", preset, config, set_, opts)


@app.command("i2i")
def i2i(
    dataset: str = typer.Option(None, help="Comma-separated datasets (default amazon-scientific)."),
    models: str = typer.Option(None, help="Comma-separated I2I models: itemcf,swing,emb."),
    seeds: int = typer.Option(None, min=1, help="Seeds 0..N-1 (default 3)."),
    teacher: str = typer.Option(None, help="minilm (default), smollm2 or http."),
    out: str = typer.Option(None, help="Folder for the study folder."),
    preset: str = PRESET,
    config: Path = CONFIG,
    set_: list[str] = SET,
) -> None:
    """LLM-I2I: generator + discriminator refine the data of ItemCF / Swing / embedding I2I."""
    opts = _options(
        datasets=_csv(dataset),
        models=_csv(models),
        seeds=_seeds(seeds), teacher=teacher, output=out,
    )  # fmt: skip
    run("recfuse.studies.i2i.study:I2IStudy", preset, config, set_, opts)


@app.command("cemg")
def cemg(
    dataset: str = typer.Option(None, help="Dataset (default amazon-scientific)."),
    seeds: int = typer.Option(None, min=1, help="Number of seeds (default 3)."),
    first_seed: int = typer.Option(0, help="First seed."),
    preset: str = typer.Option("full", help="smoke, cpu, gpu or full."),
    out: str = typer.Option(None, help="Folder for the study folder."),
    methods: str = typer.Option(None, help="Comma-separated: sasrec,cemg,text,random."),
    collab_model: str = typer.Option(None, help="Collaborative model of CEMG."),
    levels: int = typer.Option(None, help="Code levels."),
    codebook_size: int = typer.Option(None, help="Codes per level (0: from the catalogue)."),
    text_features_path: str = typer.Option(None, help=".npy [n_items, d] instead of MiniLM."),
    device: str = typer.Option(None, help="cpu, cuda or auto."),
    threads: int = typer.Option(None),
    config: Path = CONFIG,
    set_: list[str] = SET,
) -> None:
    """CEMG vs text-only semantic IDs vs random codes vs SASRec, over seeds."""
    opts = _options(
        datasets=[dataset] if dataset else None,
        seeds=_seeds(seeds or (3 if first_seed else None), first_seed), output=out,
        methods=_csv(methods),
        collab_model=collab_model, levels=levels,
        codebook_size=None if codebook_size is None else (codebook_size or float("nan")),
        text_features=text_features_path or None, threads=threads,
        **{"train.device": device},
    )  # fmt: skip
    run("recfuse.studies.cemg:CEMGStudy", preset, config, set_, opts)


@app.command("higemine")
def higemine(
    datasets: str = typer.Option(None, help="Comma-separated: goodreads-books,booklyn-books."),
    seeds: int = typer.Option(None, min=1, help="Seeds 0..N-1 (default 5)."),
    model: str = typer.Option(None, help="Frozen text model (default minilm)."),
    limit: int = typer.Option(None, help="Keep the first N labelled books (a quick run)."),
    out: str = typer.Option(None, help="Folder for the study folder."),
    threads: int = typer.Option(None),
    preset: str = PRESET,
    config: Path = CONFIG,
    set_: list[str] = SET,
) -> None:
    """HiGeMine: hierarchical + graph vs flat genre prediction, filtered vs unfiltered reviews."""
    opts = _options(
        datasets=_csv(datasets),
        seeds=_seeds(seeds), model=model, limit=limit, output=out, threads=threads,
    )  # fmt: skip
    run("recfuse.studies.higemine:HiGeMineStudy", preset, config, set_, opts)


@app.command("leakage")
def leakage(
    out: str = typer.Option(None, help="Study folder (default runs/study-leakage)."),
    seeds: int = typer.Option(None, min=1, help="Seeds 0..N-1 per case (default 5)."),
    cases: str = typer.Option(
        None, help="Comma-separated: chembl,goodreads,goodreads-minilm,amazon."
    ),
    chembl_max_groups: int = typer.Option(None, help="Assays kept from ChEMBL (random, seed 0)."),
    probe: str = typer.Option(None, help="Group probe: knn or mlp."),
    threads: int = typer.Option(None, min=1, help="torch threads."),
    preset: str = PRESET,
    config: Path = CONFIG,
    set_: list[str] = SET,
) -> None:
    """The Clever-Hans leakage audit for each case over seeds."""
    opts = _options(
        folder=out, seeds=_seeds(seeds), probe=probe, threads=threads,
        datasets=_csv(cases),
        chembl_max_groups=chembl_max_groups,
    )  # fmt: skip
    run("recfuse.studies.leakage:LeakageStudy", preset, config, set_, opts)


@app.command("xai")
def xai(
    dataset: str = typer.Option(None, help="Dataset (default agronomy)."),
    rounds: int = typer.Option(None, min=1, help="Rounds after round 0 (default 10)."),
    seeds: int = typer.Option(None, min=1, help="Seeds 0..N-1 (default 3)."),
    backend: str = typer.Option(
        None, help="LLM backend kind (default auto: CTranslate2 where installed)."
    ),
    out: str = typer.Option(None, help="Folder that holds the study folder."),
    preset: str = PRESET,
    config: Path = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Agentic XAI: SHAP -> LLM explanation refined over rounds, judged, early-stopped."""
    opts = _options(
        datasets=[dataset] if dataset else None, rounds=rounds, seeds=_seeds(seeds),
        backend=backend, output=out,
    )  # fmt: skip
    run("recfuse.studies.xai:XAIStudy", preset, config, set_, opts)


@app.command("mmsrarec")
def mmsrarec(
    dataset: str = typer.Option(None, help="Comma-separated datasets (default ml-100k)."),
    seeds: int = typer.Option(None, min=1, help="SASRec seeds 0..N-1 (default 3)."),
    lm_seeds: int = typer.Option(None, min=1, help="LM recommender seeds 0..N-1 (default 1)."),
    stages: str = typer.Option(None, help="Comma-separated: policy,sasrec,lm (keywords always)."),
    out: str = typer.Option(None, help="Folder that holds the study folder (default runs)."),
    workers: int = typer.Option(None, help="Cells trained in parallel processes."),
    preset: str = PRESET,
    config: Path = CONFIG,
    set_: list[str] = SET,
) -> None:
    """MMSRARec: reward-shaped keyword summaries, collaborative keywords, a keyword LM."""
    opts = _options(
        datasets=_csv(dataset),
        seeds=_seeds(seeds), lm_seeds=_seeds(lm_seeds), output=out, workers=workers,
        stages=_csv(stages) or ([] if stages is not None else None),  # "" = no optional stage
    )  # fmt: skip
    summary = run("recfuse.studies.mmsrarec:MMSRARecStudy", preset, config, set_, opts)
    _echo_verdicts(summary)


@app.command("guidance")
def guidance(
    dataset: str = typer.Option(None, help="Dataset (default ml-100k)."),
    teacher: str = typer.Option(None, help="minilm, smollm2, llamacpp:<gguf> or http://...#model."),
    backbone: str = typer.Option(None, help="sasrec (default) or bpr."),
    seeds: int = typer.Option(None, min=1, help="Seeds 0..N-1 (default 3)."),
    max_users: int = typer.Option(None, help="Random user subsample (e.g. MicroLens)."),
    out: str = typer.Option(None, help="Folder that holds the study folder (default runs)."),
    workers: int = typer.Option(None, help="Cells trained in parallel processes."),
    preset: str = PRESET,
    config: Path = CONFIG,
    set_: list[str] = SET,
) -> None:
    """Selective LLM guidance (S-LLMR): teacher, gate, six arms, slices, verdicts."""
    opts = _options(
        datasets=[dataset] if dataset else None, teacher=teacher, backbone=backbone,
        seeds=_seeds(seeds), max_users=max_users, output=out, workers=workers,
    )  # fmt: skip
    # BPR's own optimiser defaults (the shared TrainConfig's are SASRec's); --set wins
    base = ["train.batch_size=4096", "train.lr=0.005"] if backbone == "bpr" else []
    summary = run("recfuse.studies.guidance:GuidanceStudy", preset, config, [*base, *set_], opts)
    _echo_verdicts(summary)


@app.command("reaseq")
def reaseq(
    dataset: str = typer.Option(None, help="Dataset (default ml-100k)."),
    seeds: int = typer.Option(None, min=1, help="Seeds 0..N-1 (default 3)."),
    stage: str = typer.Option(
        None, help="all (default), knowledge or interests (offline stages only)."
    ),
    llm: str = typer.Option(None, help="smollm2 (default) or http://host:port/v1#model."),
    knowledge_max_chunks: int = typer.Option(
        None, help="Compute at most N new knowledge chunks this run (0: none; resumable)."
    ),
    out: str = typer.Option(None, help="Folder that holds the study folder (default runs)."),
    workers: int = typer.Option(None, help="Cells trained in parallel processes."),
    preset: str = PRESET,
    config: Path = CONFIG,
    set_: list[str] = SET,
) -> None:
    """ReaSeq: multi-agent item knowledge + beyond-log interests for SASRec."""
    opts = _options(
        datasets=[dataset] if dataset else None, seeds=_seeds(seeds), stage=stage, llm=llm,
        knowledge_max_chunks=knowledge_max_chunks, output=out, workers=workers,
    )  # fmt: skip
    summary = run("recfuse.studies.reaseq:ReaSeqStudy", preset, config, set_, opts)
    typer.echo(summary.markdown)
    _echo_verdicts(summary)


for _name, _module in STUDIES.items():
    try:
        _main = importlib.import_module(_module).main
    except ModuleNotFoundError as _exc:
        if _exc.name and _module.startswith(_exc.name):
            continue
        raise
    app.command(
        name=_name, help=(_main.__doc__ or "").strip().splitlines()[0] if _main.__doc__ else None
    )(_main)
