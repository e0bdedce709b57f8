"""The DFF study: do a frozen model's hidden states help a sequential recommender, and how?

It asks the DFF paper's three questions of any frozen model and dataset:

1. Do intermediate hidden states beat features of LLM-generated captions?
2. Does fusing content with ID embeddings beat replacing the IDs?
3. How much does a layer's usefulness vary from layer to layer?

Arms (each trained with ``seeds`` seeds on one fixed leave-one-out split): ID only; replacement
and fusion, each with the captions, the last layer and the best single layer (best = highest
mean validation NDCG@10 in the layer sweep, never a test number); a single-layer sweep of both
over the sweep layers; fusion modes concat/sum at the best layer; DFF over the sweep layers.
Every arm's result is written as soon as it finishes, so an interrupted study resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recfuse.atomic import atomic_path, write_json, write_text
from recfuse.data import load_dataset
from recfuse.data.dataset import Dataset
from recfuse.errors import ConfigError
from recfuse.evaluation import Evaluator
from recfuse.evaluation.significance import paired_test
from recfuse.models import GRU4Rec, SASRec
from recfuse.models.item_encoders import (
    DFFEncoder,
    FusionEncoder,
    IdEncoder,
    ItemEncoder,
    ReplacementEncoder,
)
from recfuse.provenance import package_versions
from recfuse.split import Split, make_split
from recfuse.studies.dff_sample import sample_users, subsample

METRIC = "NDCG@10"


@dataclass
class Preset:
    """Budget of one study run (documented in every results table)."""

    max_users: int | None
    epochs: int
    max_seconds: float
    patience: int
    valid_users: int | None
    dim: int = 64
    max_len: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    sweep_stride: int = 1  # sweep every layer (1) or every n-th layer plus the last
    fusion_modes: bool = True  # also run concat and sum fusion at the best layer


PRESETS: dict[str, Preset] = {
    # make demo: minutes on 2 cores from a cold cache
    "fast": Preset(
        max_users=2000,
        epochs=15,
        max_seconds=20,
        patience=3,
        valid_users=None,
        fusion_modes=False,
    ),
    # the benchmark; on a shared 2-core machine still a user subsample and a time budget
    "full": Preset(max_users=6000, epochs=60, max_seconds=90, patience=5, valid_users=2000),
}


@dataclass
class Arm:
    """One configuration of the item encoder."""

    name: str
    kind: str  # id | replace | fusion | dff
    source: str  # "" | "layer" | "captions"
    layer: int | None = None
    mode: str = "gate"
    layers: list[int] = field(default_factory=list)


# ----------------------------------------------------------------------------- features


@dataclass
class StudyFeatures:
    """Frozen features of the study's catalogue: all layers [L, n, d] and optional captions."""

    layers: np.ndarray
    captions: np.ndarray | None
    caption_coverage: float
    caption_note: str
    model: str
    extraction: str


def locate_name(model: str) -> str:
    from recfuse.frozen import locate_model

    return locate_model(model).name


def load_study_features(
    full: Dataset,
    data: Dataset,
    model: str,
    pooling: str,
    progress: bool,
    store: Any = None,
    device: str = "cpu",
) -> StudyFeatures:
    """Extract (or reuse) the full catalogue's layer features and pick the study's rows."""
    from recfuse.features.captions import CaptionResult, cached_captions, encode_captions
    from recfuse.features.extract import extract_features, extraction_identity
    from recfuse.features.store import FeatureStore

    store = store or FeatureStore()
    full_texts = full.item_texts()
    rows = data.items["source_item"].to_numpy() if "source_item" in data.items else None
    whole = store.feature_set(
        full.name, locate_name(model), extraction_identity(model, full_texts, None, 128)
    )
    if rows is None or whole.complete:
        # the whole catalogue is (or is being made) extracted: reuse it, pick the study's rows
        fset = extract_features(
            full_texts, model, full.name, None, store, progress=progress, device=device
        )
        stacked = fset.layers(pooling)
        if rows is not None:
            stacked = stacked[:, rows]
    else:
        # only the subsample's items: a slow model then costs what the study needs, no more
        fset = extract_features(
            data.item_texts(), model, data.name, None, store, progress=progress, device=device
        )
        stacked = fset.layers(pooling)
    captions, coverage = None, 0.0
    cached = cached_captions(full.name, store)
    if cached is None:
        note = (
            f"captions not cached: run `recfuse features captions --dataset {full.name}` "
            f"(add --items-of-users N to caption only a user sample's items) to add this arm"
        )
    else:
        if rows is not None:
            # encode only the captions of the study's items (a subsample needs no more)
            wanted = np.isin(cached.items, rows)
            cached = CaptionResult(
                cached.items[wanted],
                [c for c, keep in zip(cached.captions, wanted, strict=True) if keep],
                None,
                cached.folder,
            )
        encoded = encode_captions(cached, full.name, model, store, progress, device)
        matrix = encoded.matrix(full.n_items, layer=-1, pooling=pooling)
        has = np.zeros(full.n_items, dtype=bool)
        has[encoded.items] = True
        if rows is not None:
            matrix, has = matrix[rows], has[rows]
        coverage = float(has.mean())
        captions = matrix
        note = f"captions cover {has.sum()} of {len(has)} catalogue items ({coverage:.1%})"
    return StudyFeatures(stacked, captions, coverage, note, model, str(fset.folder))


# ----------------------------------------------------------------------------- arms


def sweep_layers(n_layers: int, stride: int) -> list[int]:
    """Every ``stride``-th layer from 0, always including the last."""
    chosen = list(range(0, n_layers, max(1, stride)))
    if chosen[-1] != n_layers - 1:
        chosen.append(n_layers - 1)
    return chosen


def encoder_factory(arm: Arm, feats: StudyFeatures) -> Any:
    """The `(split, dim) -> ItemEncoder` factory of one arm."""

    def content() -> np.ndarray:
        if arm.source == "captions":
            assert feats.captions is not None
            return feats.captions
        assert arm.layer is not None
        return feats.layers[arm.layer]

    def build(split: Split, dim: int) -> ItemEncoder:
        if arm.kind == "id":
            return IdEncoder(split.n_items, dim)
        if arm.kind == "replace":
            return ReplacementEncoder(content(), dim)
        if arm.kind == "fusion":
            return FusionEncoder(content(), dim, mode=arm.mode)
        if arm.kind == "dff":
            return DFFEncoder(feats.layers[arm.layers], dim, layers=arm.layers)
        raise ConfigError(f"unknown arm kind {arm.kind!r}")

    return build


class OnDevice:
    """Mixin: train and score a `SequentialRecommender` on a torch device (e.g. ``cuda``).

    The backbones and the trainer stay as they are; the network is moved after it is built,
    batches follow it, and scores come back to the CPU for the `Evaluator`.
    """

    device: str = "cpu"

    def build(self, split: Split) -> torch.nn.Module:
        return super().build(split).to(self.device)  # type: ignore[misc]

    def batches(self, split: Split, rng: np.random.Generator) -> Any:
        for inputs, targets in super().batches(split, rng):  # type: ignore[misc]
            yield inputs.to(self.device), targets.to(self.device)

    @torch.no_grad()
    def score(self, users: np.ndarray, histories: Any) -> np.ndarray:
        from recfuse.models.sequential import left_pad

        table = self.item_table()  # type: ignore[attr-defined]
        seq = torch.as_tensor(left_pad(histories, self.max_len, self.n_items_))  # type: ignore[attr-defined]
        hidden = self.net_(seq.to(self.device), table)[:, -1]  # type: ignore[attr-defined]
        return (hidden @ table[:-1].T).cpu().numpy()


class DeviceSASRec(OnDevice, SASRec):
    pass


class DeviceGRU4Rec(OnDevice, GRU4Rec):
    pass


def make_model(backbone: str, preset: Preset, seed: int, factory: Any, device: str = "cpu") -> Any:
    """The backbone with the arm's encoder and the preset's budget (on ``device``)."""
    import dataclasses

    from recfuse.models import TrainConfig

    extra: dict[str, Any] = {}
    native = "device" in {f.name for f in dataclasses.fields(TrainConfig)}
    if native:
        # the trainer places the network itself
        extra["device"] = device
    classes = {
        "sasrec": SASRec if device == "cpu" or native else DeviceSASRec,
        "gru4rec": GRU4Rec if device == "cpu" or native else DeviceGRU4Rec,
    }
    cls = classes.get(backbone)
    if cls is None:
        raise ConfigError(f"backbone {backbone!r} is not sasrec or gru4rec")
    if device != "cpu" and not native:
        cls = type(cls.__name__, (cls,), {"device": device})
    return cls(
        dim=preset.dim,
        max_len=preset.max_len,
        encoder=factory,
        epochs=preset.epochs,
        batch_size=preset.batch_size,
        lr=preset.lr,
        patience=preset.patience,
        seed=seed,
        valid_users=preset.valid_users,
        max_seconds=preset.max_seconds,
        progress=False,
        **extra,
    )


def run_arm(
    arm: Arm,
    seed: int,
    split: Split,
    feats: StudyFeatures,
    backbone: str,
    preset: Preset,
    folder: Path,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train one arm with one seed (or read its saved result) and evaluate valid and test."""
    result_path = folder / "arms" / f"{arm.name}-seed{seed}.json"
    per_user_path = folder / "arms" / f"{arm.name}-seed{seed}.test.parquet"
    if result_path.is_file() and per_user_path.is_file():
        return json.loads(result_path.read_text())
    torch.manual_seed(seed)
    model = make_model(backbone, preset, seed, encoder_factory(arm, feats), device)
    model.fit(split)
    evaluator = Evaluator(split, ks=(10, 20))
    valid = evaluator.evaluate(model, "valid")
    test = evaluator.evaluate(model, "test")
    encoder = model.net_.encoder
    result = {
        "arm": asdict(arm),
        "seed": seed,
        "valid": valid.metrics,
        "test": test.metrics,
        "report": model.report(),
        "has_id_table": bool(encoder.has_id_table),
        "trainable_parameters": int(
            sum(p.numel() for p in model.net_.parameters() if p.requires_grad)
        ),
        "epochs": len(model.history_),
        "train_seconds": model.train_seconds_,
        "history": model.history_,
    }
    with atomic_path(per_user_path) as tmp:
        test.per_user[["user", METRIC, "Recall@10"]].to_parquet(tmp)
    write_json(result_path, result)
    return result


_FORKED: dict[str, Any] = {}


def _run_forked(job: tuple[Arm, int]) -> str:
    """Worker body: train one (arm, seed) with the state inherited from the parent at fork."""
    torch.set_num_threads(1)
    arm, seed = job
    state = _FORKED
    run_arm(
        arm,
        seed,
        state["split"],
        state["feats"],
        state["backbone"],
        state["budget"],
        state["folder"],
    )
    return f"{arm.name}-seed{seed}"


def run_parallel(jobs: list[tuple[Arm, int]], workers: int, **state: Any) -> None:
    """Train independent (arm, seed) jobs in ``workers`` forked processes (results go to files).

    Forking shares the feature matrices copy-on-write; each worker uses one torch thread.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    todo = [
        (arm, seed)
        for arm, seed in jobs
        if not (state["folder"] / "arms" / f"{arm.name}-seed{seed}.json").is_file()
    ]
    if workers <= 1 or not todo:
        return
    _FORKED.clear()
    _FORKED.update(state)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        for _ in pool.map(_run_forked, todo):
            pass


# ----------------------------------------------------------------------------- report


def time_cap(seconds: float | None) -> str:
    return "no time cap" if seconds is None or seconds == float("inf") else f"<= {seconds:.0f} s"


def mean_std(values: list[float]) -> str:
    arr = np.asarray(values, dtype=float)
    return f"{arr.mean():.4f} ± {arr.std(ddof=1) if len(arr) > 1 else 0.0:.4f}"


def per_user_mean(folder: Path, arm: str, seeds: list[int]) -> pd.DataFrame:
    """Per-user test metrics averaged over seeds (the unit of the paired tests)."""
    frames = [pd.read_parquet(folder / "arms" / f"{arm}-seed{s}.test.parquet") for s in seeds]
    return pd.concat(frames).groupby("user", as_index=False).mean()


def significance(folder: Path, a: str, b: str, seeds: list[int]) -> str:
    if a == b:
        return "—"
    test = paired_test(per_user_mean(folder, a, seeds), per_user_mean(folder, b, seeds), METRIC)
    star = "*" if test.t_pvalue < 0.05 else ""
    return f"{test.diff:+.4f} (p={test.t_pvalue:.2g}){star}"


def paired_p(folder: Path, a: str, b: str, seeds: list[int]) -> float:
    return paired_test(
        per_user_mean(folder, a, seeds), per_user_mean(folder, b, seeds), METRIC
    ).t_pvalue


def plot_sweep(path: Path, sweep: pd.DataFrame, lines: dict[str, float], title: str) -> None:
    """Layer-sweep plot: test NDCG@10 (mean ± std over seeds) of fusion and replacement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for kind, style in (("fusion", "o-"), ("replace", "s--")):
        part = sweep[sweep["kind"] == kind].sort_values("layer")
        if len(part):
            ax.errorbar(
                part["layer"],
                part["mean"],
                yerr=part["std"],
                fmt=style,
                capsize=3,
                label=f"{kind} (single layer)",
            )
    for i, (label, value) in enumerate(lines.items()):
        ax.axhline(value, linestyle=":", color=f"C{i + 2}", label=label)
    ax.set_xlabel("layer (0 = embedding output)")
    ax.set_ylabel(f"test {METRIC}")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def verdicts(
    table: pd.DataFrame, folder: Path, seeds: list[int], names: dict[str, str]
) -> list[str]:
    """One line per principle: holds / does not hold, with the numbers behind it."""
    test = table.set_index("arm")["test_mean"]
    std = table.set_index("arm")["test_std"]
    lines = []

    def cmp(a: str, b: str) -> str:
        return (
            f"{a} {test[a]:.4f} vs {b} {test[b]:.4f} (paired p={paired_p(folder, a, b, seeds):.2g})"
        )

    # 1. hidden states beat captions
    if "replace-captions" in test.index:
        pairs = [
            (names["replace_best"], "replace-captions"),
            (names["fusion_best"], "fusion-captions"),
            ("replace-last", "replace-captions"),
            ("fusion-last", "fusion-captions"),
        ]
        wins = [test[a] > test[b] for a, b in pairs]
        holds = all(wins[:2])
        lines.append(
            f"Principle 1 (hidden states beat captions): {'holds' if holds else 'does not hold'} — "
            + "; ".join(cmp(a, b) for a, b in pairs)
        )
    else:
        lines.append("Principle 1 (hidden states beat captions): not tested — captions not cached")
    # 2. fusion beats replacement
    pairs = [(names["fusion_best"], names["replace_best"]), ("fusion-last", "replace-last")]
    if "fusion-captions" in test.index:
        pairs.append(("fusion-captions", "replace-captions"))
    holds = all(test[a] > test[b] for a, b in pairs)
    lines.append(
        f"Principle 2 (fusing with IDs beats replacing IDs): {'holds' if holds else 'does not hold'}"
        " — " + "; ".join(cmp(a, b) for a, b in pairs) + f"; ID only {test['id']:.4f}"
    )
    # 3. layer usefulness varies
    sweep = table[(table["kind"] == "fusion") & table["arm"].str.startswith("fusion-L")]
    best, worst = sweep.loc[sweep["test_mean"].idxmax()], sweep.loc[sweep["test_mean"].idxmin()]
    spread = best["test_mean"] - worst["test_mean"]
    noise = float(sweep["test_std"].mean())
    p = paired_p(folder, best["arm"], worst["arm"], seeds)
    holds = spread > 2 * noise and p < 0.05
    lines.append(
        f"Principle 3 (layer usefulness varies): {'holds' if holds else 'does not hold'} — "
        f"fusion sweep test {METRIC} from {worst['test_mean']:.4f} ({worst['arm']}) to "
        f"{best['test_mean']:.4f} ({best['arm']}): spread {spread:.4f} = "
        f"{spread / max(worst['test_mean'], 1e-9):.1%} of the worst, vs mean seed std {noise:.4f}; "
        f"best vs worst paired p={p:.2g}; layer chosen on validation: {names['fusion_best']}"
    )
    dff = "dff"
    lines.append(
        f"DFF vs best single layer: {cmp(dff, names['fusion_best'])}; DFF vs ID only: "
        f"{cmp(dff, 'id')}; seed std DFF {std[dff]:.4f}"
    )
    return lines


# ----------------------------------------------------------------------------- main


def main(
    dataset: str = "microlens-50k",
    model: str = "minilm",
    seeds: int = 3,
    preset: str = "full",
    backbone: str = "sasrec",
    max_users: int | None = None,
    out: str = "runs",
    workers: int = 1,
    sweep_stride: int | None = None,
    replace_sweep: bool = True,
    max_seconds: float | None = None,
) -> Path:
    """Ask DFF's three questions (captions vs hidden states, fusion vs replacement, layers)."""
    return run_study(
        dataset,
        model,
        seeds,
        preset,
        backbone,
        max_users,
        out,
        workers=workers,
        sweep_stride=sweep_stride,
        replace_sweep=replace_sweep,
        max_seconds=max_seconds,
    )


def run_study(
    dataset: str = "microlens-50k",
    model: str = "minilm",
    seeds: int = 3,
    preset: str = "full",
    backbone: str = "sasrec",
    max_users: int | None = None,
    out: str = "runs",
    pooling: str = "mean",
    progress: bool = True,
    echo: Any = print,
    dataset_obj: Dataset | None = None,
    store: Any = None,
    workers: int = 1,
    sweep_stride: int | None = None,
    replace_sweep: bool = True,
    max_seconds: float | None = None,
    device: str = "cpu",
    train_device: str = "cpu",
    epochs: int | None = None,
    valid_users: int | None = None,
    fusion_modes: bool | None = None,
) -> Path:
    """The study; returns the run folder (which holds results.md, the plot and all arms)."""
    if preset not in PRESETS:
        raise ConfigError(f"preset {preset!r} is not one of {', '.join(PRESETS)}")
    if seeds < 1:
        raise ConfigError("seeds must be >= 1")
    if max_seconds is not None and max_seconds <= 0:
        max_seconds = float("inf")  # 0 or less: no time budget, epochs only
    budget = PRESETS[preset]
    overrides = {
        "max_users": max_users,
        "sweep_stride": sweep_stride,
        "max_seconds": max_seconds,
        "epochs": epochs,
        "valid_users": valid_users,
        "fusion_modes": fusion_modes,
    }
    budget = Preset(**{**asdict(budget), **{k: v for k, v in overrides.items() if v is not None}})
    started = time.perf_counter()
    full = dataset_obj if dataset_obj is not None else load_dataset(dataset)
    users = sample_users(full, budget.max_users, seed=0)
    data = subsample(full, users)
    split = make_split(data, "leave_one_out", seed=0)
    seed_list = list(range(seeds))
    config = {
        "dataset": dataset,
        "model": model,
        "seeds": seed_list,
        "preset": preset,
        "budget": asdict(budget),
        "backbone": backbone,
        "pooling": pooling,
        "workers": workers,
        "replace_sweep": replace_sweep,
        "extraction_device": device,
        "train_device": train_device,
        "split": "leave_one_out (last item test, second-to-last valid), seed 0",
        "users": f"{len(users)} of {full.n_users} users (random, seed 0, >= 3 interactions)",
        "items": f"{data.n_items} of {full.n_items} items (those the sampled users touched)",
    }
    tag = (
        f"{dataset}-{locate_name(model)}-{backbone}-{preset}-u{budget.max_users or 'all'}-{pooling}"
    )
    folder = Path(out) / "dff" / tag
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", config)
    write_json(folder / "versions.json", package_versions())
    if not (folder / "split" / "split.json").exists():
        split.save(folder / "split")
    echo(
        f"DFF study {tag}: {config['users']}, {config['items']}; budget {budget.epochs} epochs / "
        f"{time_cap(budget.max_seconds)} per model, {seeds} seed(s)"
    )

    feats = load_study_features(full, data, model, pooling, progress, store, device)
    n_layers = feats.layers.shape[0]
    sweep = sweep_layers(n_layers, budget.sweep_stride)
    last = n_layers - 1
    echo(f"features: {n_layers} layers of {model} ({feats.extraction}); {feats.caption_note}")

    def run(arm: Arm) -> list[dict[str, Any]]:
        results = []
        for seed in seed_list:
            res = run_arm(arm, seed, split, feats, backbone, budget, folder, train_device)
            results.append(res)
        echo(
            f"  {arm.name:<22} valid {mean_std([r['valid'][METRIC] for r in results])}  "
            f"test {mean_std([r['test'][METRIC] for r in results])}  "
            f"[{time.perf_counter() - started:.0f} s]"
        )
        return results

    results: dict[str, list[dict[str, Any]]] = {}
    arms: dict[str, Arm] = {}

    def add(arm: Arm) -> None:
        arms[arm.name] = arm
        results[arm.name] = run(arm)

    state = {
        "split": split,
        "feats": feats,
        "backbone": backbone,
        "budget": budget,
        "folder": folder,
        "train_device": train_device,
    }
    first = [Arm("id", "id", "")]
    first += [Arm(f"fusion-L{layer}", "fusion", "layer", layer) for layer in sweep]
    if replace_sweep:
        first += [Arm(f"replace-L{layer}", "replace", "layer", layer) for layer in sweep]
    run_parallel([(a, s) for a in first for s in seed_list], workers, **state)
    for arm in first:
        add(arm)

    def best_of(kind: str) -> int:
        scores = {
            layer: np.mean([r["valid"][METRIC] for r in results[f"{kind}-L{layer}"]])
            for layer in sweep
        }
        return max(scores, key=lambda k: scores[k])

    best_fusion = best_of("fusion")
    if not replace_sweep:
        # no replacement sweep (budget): replacement uses the layer the fusion sweep chose
        second_choice = [
            Arm(f"replace-L{layer}", "replace", "layer", layer)
            for layer in sorted({last, best_fusion})
        ]
        run_parallel([(a, s) for a in second_choice for s in seed_list], workers, **state)
        for arm in second_choice:
            add(arm)
    best_replace = best_of("replace") if replace_sweep else best_fusion
    aliases = {
        "fusion-last": f"fusion-L{last}",
        "replace-last": f"replace-L{last}",
        "fusion-best": f"fusion-L{best_fusion}",
        "replace-best": f"replace-L{best_replace}",
    }
    second = []
    if budget.fusion_modes:
        for mode in ("concat", "sum"):
            second.append(
                Arm(f"fusion-{mode}-L{best_fusion}", "fusion", "layer", best_fusion, mode)
            )
    if feats.captions is not None:
        second.append(Arm("replace-captions", "replace", "captions"))
        second.append(Arm("fusion-captions", "fusion", "captions"))
    else:
        echo(f"skipping the caption arms: {feats.caption_note}")
    second.append(Arm("dff", "dff", "layers", layers=sweep))
    run_parallel([(a, s) for a in second for s in seed_list], workers, **state)
    for arm in second:
        add(arm)

    # ---------------------------------------------------------------- the table
    rows = []
    for name, res in results.items():
        arm = arms[name]
        tests = [r["test"][METRIC] for r in res]
        rows.append(
            {
                "arm": name,
                "kind": arm.kind,
                "layer": arm.layer if arm.layer is not None else -1,
                "valid_mean": float(np.mean([r["valid"][METRIC] for r in res])),
                "test_mean": float(np.mean(tests)),
                "test_std": float(np.std(tests, ddof=1)) if len(tests) > 1 else 0.0,
                "recall_mean": float(np.mean([r["test"]["Recall@10"] for r in res])),
                "id_table": res[0]["has_id_table"],
                "seconds": float(np.mean([r["train_seconds"] for r in res])),
            }
        )
    table = pd.DataFrame(rows)
    # aliases become their own rows so the verdicts can name them
    for alias, target in aliases.items():
        row = table[table["arm"] == target].iloc[0].to_dict()
        row["arm"] = alias
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
        for seed in seed_list:
            for suffix in (".json", ".test.parquet"):
                src = folder / "arms" / f"{target}-seed{seed}{suffix}"
                dst = folder / "arms" / f"{alias}-seed{seed}{suffix}"
                dst.write_bytes(src.read_bytes()) if not dst.exists() else None
    names = {"fusion_best": "fusion-best", "replace_best": "replace-best"}

    shown = [
        "id",
        "replace-captions",
        "replace-last",
        "replace-best",
        "fusion-captions",
        "fusion-last",
        "fusion-best",
    ]
    shown += [a for a in arms if a.startswith(("fusion-concat", "fusion-sum"))] + ["dff"]
    shown += [f"fusion-L{layer}" for layer in sweep] + [f"replace-L{layer}" for layer in sweep]
    shown = list(dict.fromkeys(shown))
    lines = [
        f"### DFF study: {dataset}, {model}, {backbone}, preset {preset}",
        "",
        f"{config['users']}; {config['items']}; split {config['split']}; seeds {seed_list}; "
        f"budget per model: <= {budget.epochs} epochs, {time_cap(budget.max_seconds)}, patience "
        f"{budget.patience}, dim {budget.dim}, max_len {budget.max_len}; features: {pooling}-pooled"
        f" hidden states, standardized per dimension. {feats.caption_note}.",
        "",
        f"| arm | layer | ID table | valid {METRIC} | test {METRIC} (mean ± std) | Recall@10 | "
        "vs ID only (Δ, paired t p) | vs best single layer (Δ, p) | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    indexed = table.drop_duplicates("arm").set_index("arm")
    for name in shown:
        if name not in indexed.index:
            continue
        row = indexed.loc[name]
        label = name if name not in aliases else f"{name} (= {aliases[name]})"
        res_tests = [r["test"][METRIC] for r in results[aliases.get(name, name)]]
        lines.append(
            f"| {label} | {'' if row['layer'] < 0 else int(row['layer'])} | "
            f"{'yes' if row['id_table'] else 'no'} | {row['valid_mean']:.4f} | "
            f"{mean_std(res_tests)} | {row['recall_mean']:.4f} | "
            f"{significance(folder, name, 'id', seed_list)} | "
            f"{significance(folder, name, 'fusion-best', seed_list)} | {row['seconds']:.0f} |"
        )
    dff_weights = [r["report"]["layer_weights"] for r in results["dff"]]
    mean_weights = {k: float(np.mean([w[k] for w in dff_weights])) for k in dff_weights[0]}
    lines += [
        "",
        "DFF layer weights (softmax, mean over seeds): "
        + ", ".join(f"{k} {v:.3f}" for k, v in mean_weights.items()),
        "",
    ]
    verdict_lines = verdicts(table, folder, seed_list, names)
    lines += [f"- {v}" for v in verdict_lines]
    sweep_frame = table[table["arm"].str.match(r"^(fusion|replace)-L\d+$")].rename(
        columns={"test_mean": "mean", "test_std": "std"}
    )
    ref = {
        "ID only": float(indexed.loc["id", "test_mean"]),
        "DFF": float(indexed.loc["dff", "test_mean"]),
    }
    if "fusion-captions" in indexed.index:
        ref["fusion-captions"] = float(indexed.loc["fusion-captions", "test_mean"])
    plot_sweep(folder / "layer_sweep.png", sweep_frame, ref, tag)
    lines += ["", f"Layer sweep plot: {folder / 'layer_sweep.png'}", ""]
    report = "\n".join(lines)
    write_text(folder / "results.md", report + "\n")
    table.to_csv(folder / "results.csv", index=False) if False else write_text(
        folder / "results.csv", table.to_csv(index=False)
    )
    write_json(folder / "dff_layer_weights.json", {"per_seed": dff_weights, "mean": mean_weights})
    write_json(folder / "verdicts.json", verdict_lines)
    echo(report)
    echo(f"run folder: {folder} ({time.perf_counter() - started:.0f} s)")
    return folder
