"""`recfuse study cemg`: CEMG vs text-only semantic IDs vs random codes vs SASRec (full CE).

For each seed, on one leave-one-out split of each dataset (split seed 0):

- ``sasrec``: SASRec trained with full cross-entropy (the baseline TIGER-style papers tend to
  undertrain);
- ``cemg``: collaborative embeddings (SASRec on the training split only) guide a gated fusion of
  the MiniLM text features, trained jointly with an RQ-VAE; a code transformer generates the next
  item's code, decoded with a trie;
- ``text``: TIGER-style semantic IDs (RQ-VAE on the text features alone), same generator;
- ``random``: random codes of the same shape, same generator (the ablation).

Test Recall@10 / NDCG@10 are full-ranking numbers from the common `Evaluator`; model selection
uses validation NDCG@10 only. Cells are (dataset, method, seed) on the study skeleton, keyed by
everything that changes their result (budgets included), so an interrupted run resumes and a
changed budget recomputes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from recfuse.errors import ConfigError
from recfuse.models.training import TrainConfig
from recfuse.runs.study import (
    Cell,
    CellContext,
    CellResult,
    Results,
    Study,
    StudyConfig,
    StudyFolder,
    Summary,
    bar_plot,
    fingerprint,
    mean_std,
    span,
    verdict,
)

Method = Literal["sasrec", "cemg", "text", "random"]
METHODS: tuple[str, ...] = ("sasrec", "cemg", "text", "random")
LABELS = {
    "sasrec": "SASRec (full CE)",
    "cemg": "CEMG (text + collab guided)",
    "text": "TIGER-style text-only IDs",
    "random": "random codes (ablation)",
}
#: orientation numbers quoted by the issue (Amazon Beauty, not our datasets)
ORIENTATION = {
    "TIGER on Beauty (reported)": (0.0648, 0.0384),
    "well-trained SASRec on Beauty (reported)": (0.092, 0.053),
}


class CEMGConfig(StudyConfig):
    """The CEMG study. ``train`` is every recommender's budget; the tokenizer has its own."""

    datasets: list[str] = Field(default_factory=lambda: ["amazon-scientific"], min_length=1)
    methods: list[Method] = Field(default_factory=lambda: list(METHODS), min_length=1)  # type: ignore[arg-type]
    collab_model: str = "sasrec"
    levels: int = Field(3, ge=1, le=8)
    codebook_size: int | None = Field(None, ge=2, le=65_536, description="None: from catalogue")
    text_features: str | None = Field(None, description=".npy [n_items, d] instead of MiniLM")
    tokenizer_steps: int = Field(5000, ge=1, le=1_000_000)
    tokenizer_seconds: float | None = Field(None, gt=0)
    collab_seconds: float | None = Field(None, gt=0)
    # early stopping reads 2,000 fixed validation users: a generator's validation is a beam
    # search, and on every user it costs several times the epoch it checks
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(
            epochs=300, patience=10, valid_users=2000, progress=False
        )
    )

    #: which cells run; each cell's own method is in its key
    EXECUTION_FIELDS: ClassVar[frozenset[str]] = StudyConfig.EXECUTION_FIELDS | {"methods"}


def text_features(dataset_name: str, path: str | None) -> np.ndarray:
    """MiniLM text features [n_items, 384] (`recfuse.features.embed`), or a .npy file."""
    from recfuse.features.embed import item_text_vectors

    return item_text_vectors(dataset_name, path, "minilm")


def _semantic_ids(
    method: str, split: Any, features: np.ndarray, seed: int, config: CEMGConfig, device: str
) -> tuple[Any, dict[str, Any], float]:
    """The codes of one method: (ids, extra row fields, tokenizer seconds)."""
    from recfuse.generative.collaborative import collaborative_embeddings
    from recfuse.generative.semantic_ids import (
        TokenizerConfig,
        config_dict,
        fit_semantic_ids,
        random_semantic_ids,
    )

    cfg = TokenizerConfig(
        levels=config.levels, codebook_size=config.codebook_size, steps=config.tokenizer_steps,
        max_seconds=config.tokenizer_seconds, seed=seed, device=device,
    )  # fmt: skip
    extra: dict[str, Any] = {}
    seconds = 0.0
    if method == "random":
        ids = random_semantic_ids(split.n_items, config.levels, config.codebook_size, seed)
    elif method == "text":
        ids = fit_semantic_ids({"text": features}, None, cfg)
    else:
        collab, report = collaborative_embeddings(
            split, config.collab_model, seed=seed, max_seconds=config.collab_seconds, device=device
        )
        extra["collab"] = report
        seconds += report["seconds"]
        ids = fit_semantic_ids({"text": features}, collab, cfg)
    seconds += ids.seconds
    extra["tokenizer"] = {**ids.summary(), "config": config_dict(cfg)}
    return ids, extra, seconds


class CEMGStudy(Study[CEMGConfig]):
    """CEMG's claims: collaborative guidance beats text-only and random codes."""

    name = "cemg"
    config_type = CEMGConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # a few seconds per step: checks that the study runs end to end, numbers mean nothing
        "smoke": {"tokenizer_steps": 40, "tokenizer_seconds": 15, "collab_seconds": 10,
                  "train": {"max_seconds": 15, "epochs": 1, "patience": 1, "valid_users": 200}},
        # what a shared 2-core CPU allows: every model gets the same wall-clock cap
        "cpu": {"tokenizer_steps": 1500, "tokenizer_seconds": 60, "collab_seconds": 45,
                "train": {"max_seconds": 180, "epochs": 200, "patience": 5, "valid_users": 500}},
        # one GPU machine lent for minutes: every model capped at 60 s, early stopping within it
        "gpu": {"tokenizer_steps": 3000, "tokenizer_seconds": 30, "collab_seconds": 30,
                "train": {"max_seconds": 60, "epochs": 300, "patience": 10, "valid_users": 2000}},
        # early stopping alone decides (a GPU machine or a dedicated CPU, for hours)
        "full": {},
    }  # fmt: skip

    def __init__(self) -> None:
        self.splits: dict[str, Any] = {}
        self.features: dict[str, np.ndarray] = {}
        self.keys: dict[str, dict[str, Any]] = {}

    def prepare(self, config: CEMGConfig, folder: StudyFolder) -> None:
        from recfuse.data import load_dataset
        from recfuse.split import make_split

        for ds in config.datasets:
            split = make_split(load_dataset(ds), "leave_one_out", 0)
            if not (folder.path / "splits" / ds / "split.json").is_file():
                split.save(folder.path / "splits" / ds)
            feats = text_features(ds, config.text_features)
            if len(feats) != split.n_items:
                raise ConfigError(f"text features have {len(feats)} rows, {ds} has {split.n_items}")
            self.splits[ds], self.features[ds] = split, feats
            self.keys[ds] = {
                "split": fingerprint(split.train, split.valid, split.test),
                "features": fingerprint(feats),
            }

    def inputs(self, cell: Cell, config: CEMGConfig) -> dict[str, Any]:
        return self.keys[cell.dataset]

    def cells(self, config: CEMGConfig, done: Results) -> list[Cell]:
        return [
            Cell(m, s, d) for d in config.datasets for s in config.seeds for m in config.methods
        ]

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        from recfuse.evaluation import Evaluator, fit_validated
        from recfuse.generative.recommender import GenerativeRecommender
        from recfuse.models import SASRec

        config: CEMGConfig = ctx.config  # type: ignore[assignment]
        split, method = self.splits[cell.dataset], cell.arm_name
        train = ctx.train_config(cell.seed, progress=False)
        info: dict[str, Any] = {"tokenizer_seconds": 0.0}
        if method == "sasrec":
            model: Any = SASRec(dim=64, loss="ce", train=train)
        else:
            feats = self.features[cell.dataset]
            ids, extra, seconds = _semantic_ids(method, split, feats, cell.seed, config, ctx.device)
            info.update(extra, tokenizer_seconds=seconds)
            codes = ctx.folder.path / "codes" / f"{cell.dataset}-{method}-seed{cell.seed}.npy"
            codes.parent.mkdir(parents=True, exist_ok=True)
            from recfuse.atomic import atomic_path

            with atomic_path(codes) as tmp, tmp.open("wb") as fh:
                np.save(fh, ids.codes)
            model = GenerativeRecommender(ids.codes, name=method, train=train)
        fit_validated(model, split)
        result = Evaluator(split, ks=(10, 20)).evaluate(model, "test")
        names = ("Recall@10", "NDCG@10", "Recall@20", "NDCG@20", "Coverage@10")
        metrics = {k: result.metrics[k] for k in names}
        metrics["valid NDCG@10"] = model.best_valid_
        info.update(
            epochs_run=len(model.history_), train_seconds=model.train_seconds_,
            inference_seconds=result.seconds,
            inference_ms_per_user=1000 * result.seconds / max(result.metrics["users"], 1),
            test_users=int(result.metrics["users"]),
            params={k: v for k, v in model.get_params().items() if k != "train"},
        )  # fmt: skip
        return CellResult(metrics, result.per_user[["user", "NDCG@10", "Recall@10"]], info)

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        text, verdicts = [], []
        for ds in dict.fromkeys(f.cell.dataset for f in results.cells):
            rows = [_row(f) for f in results.cells if f.cell.dataset == ds]
            text.append(results_table(rows, ds, _preset_label(folder)))
            present = {r["method"] for r in rows}
            # CEMG's claims, then TIGER's premise (semantic codes beat random ones) and the
            # baseline TIGER-style papers tend to undertrain
            wanted = [("cemg", "text"), ("cemg", "random"), ("text", "random"), ("cemg", "sasrec")]
            pairs = [(a, b) for a, b in wanted if {a, b} <= present]
            for cmp in results.compare_pairs(ds, pairs, "NDCG@10"):
                verdicts.append(verdict(f"{ds}: {cmp.arm} > {cmp.reference}", cmp))
        table = results.table(["NDCG@10"])
        table["arm"] = [LABELS.get(a, a) for a in table["arm"]]
        title = f"CEMG study, test NDCG@10 ({_preset_label(folder)})"
        plot = bar_plot(table, "NDCG@10", folder.path / "cemg.png", title)
        markdown = "\n".join(text) + f"\n![test NDCG@10 per method]({plot.name})\n"
        print(markdown)
        print(f"study folder: {folder.path}")
        return Summary(markdown, verdicts, plots=[str(plot)])


def _preset_label(folder: StudyFolder) -> str:
    return folder.path.name


def _row(f: Any) -> dict[str, Any]:
    """A finished cell as the flat row `results_table` reads."""
    return {"method": f.cell.arm_name, "seed": f.cell.seed, **f.result.metrics, **f.result.info}


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    arr = np.asarray(values, dtype=float)
    return mean_std(arr.mean(), arr.std(ddof=1)) if len(arr) > 1 else f"{arr[0]:.4f}"


def results_table(rows: list[dict[str, Any]], dataset: str, preset: str) -> str:
    """Markdown table: mean ± std over seeds per method, then the orientation numbers."""
    lines = [
        f"### {dataset} (`{preset}`, leave-one-out, full ranking)",
        "",
        "| method | seeds | Recall@10 | NDCG@10 | collision rate | codebook usage (per level) "
        "| tokenizer s | epochs | train s | inference ms/user |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        tok = [r.get("tokenizer") for r in mine]
        if all(t is not None for t in tok):
            collisions = _mean_std([t["collision_rate"] for t in tok])  # type: ignore[index]
            usage_levels = np.mean([t["usage"] for t in tok], axis=0)  # type: ignore[index]
            usage = " / ".join(f"{u:.2f}" for u in usage_levels)
        else:
            collisions, usage = "–", "–"
        lines.append(
            f"| {LABELS[method]} | {len(mine)} "
            f"| {_mean_std([r['Recall@10'] for r in mine])} "
            f"| {_mean_std([r['NDCG@10'] for r in mine])} | {collisions} | {usage} "
            f"| {np.mean([r['tokenizer_seconds'] for r in mine]):.0f} "
            f"| {span(r.get('epochs_run', float('nan')) for r in mine)} "
            f"| {np.mean([r['train_seconds'] for r in mine]):.0f} "
            f"| {np.mean([r['inference_ms_per_user'] for r in mine]):.2f} |"
        )
    for label, (recall, ndcg) in ORIENTATION.items():
        lines.append(f"| *{label}* | – | {recall:.4f} | {ndcg:.4f} | – | – | – | – | – | – |")
    return "\n".join(lines) + "\n"
