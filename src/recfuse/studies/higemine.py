"""The HiGeMine study: does hierarchy + a label graph beat flat genre prediction, and do
blurb-filtered reviews beat all reviews?

For each dataset (goodreads-books, booklyn-books), each split (random; author-disjoint with
co-authors joined) and each seed, every method is trained on train, tuned on valid (early stopping,
the review-filter threshold, every decision threshold) and scored once on test:

- higemine: dual-path hierarchical classifier with GCN classifiers over the training label graph;
- hier_nograph, flat_mlp: the same network without the graph, and also without the hierarchy;
- flat_logreg, tfidf_logreg: one-vs-rest logistic regression on the frozen features / on TF-IDF;
- booklyn-books only: higemine with blurb only, blurb + all reviews, blurb + filtered reviews.

Each (dataset, split, seed) is one cell of the study skeleton (`recfuse.runs.study`), keyed by
everything that changes its result, so a rerun resumes and a changed setting recomputes. The
study folder gets config, versions, every cell (with the parts of its split), results (CSV +
Markdown), paired significance tests, the random vs author-disjoint gap, review-filter examples,
a plot, and verdicts: a claim holds only with >= 3 seeds and a significant paired t-test over
seeds (Holm-corrected within the dataset and split) in the claimed direction.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from recfuse.atomic import atomic_path, write_json
from recfuse.classify.metrics import all_scores, example_f1, per_genre_table
from recfuse.classify.pipeline import (
    METHODS,
    BookCorpus,
    choose_review_threshold,
    fit_method,
    load_corpus,
    review_features,
)
from recfuse.classify.review_filter import filter_report, keep_mask
from recfuse.classify.splits import SPLIT_KINDS, split_parts
from recfuse.evaluation.significance import holm, paired_arrays, sign_flip_test
from recfuse.runs.study import (
    Cell,
    CellContext,
    CellResult,
    Comparison,
    Results,
    Study,
    StudyConfig,
    StudyFolder,
    Summary,
    Verdict,
    fingerprint,
    verdict,
)

METRICS = ("l1_acc", "l1_f1", "l2_micro_f1", "l2_macro_f1", "h_f1")
REVIEW_VARIANTS = ("none", "all")  # besides the default "filtered" (booklyn-books)


def _variants(corpus: BookCorpus) -> list[tuple[str, str, str]]:
    """(variant name, method, review mode) run in every cell of ``corpus``."""
    main_mode = "filtered" if corpus.reviews is not None else "none"
    out = [(m, m, main_mode) for m in METHODS]
    if corpus.reviews is not None:
        out += [(f"higemine[reviews={mode}]", "higemine", mode) for mode in REVIEW_VARIANTS]
    return out


def run_cell(corpus: BookCorpus, split: str, seed: int) -> dict[str, Any]:
    """Train and score every variant on one (split, seed); returns a JSON-able record."""
    parts = split_parts(split, corpus.authors, seed, corpus.labels.labeled)
    test = np.flatnonzero(parts == 2)
    y = corpus.targets().take(test)
    record: dict[str, Any] = {
        "split": split, "seed": seed,
        "parts": {"train": int((parts == 0).sum()), "valid": int((parts == 1).sum()), "test": len(test)},
        "part_of_book": {str(b): int(p) for b, p in zip(corpus.labels.book_ids, parts, strict=True)},
        "test_book_ids": [str(b) for b in corpus.labels.book_ids[test]],
        "variants": {},
    }  # fmt: skip
    threshold = None
    if corpus.reviews is not None:
        threshold, scores = choose_review_threshold(corpus, parts, seed)
        assert corpus.similarity is not None
        keep = keep_mask(corpus.similarity, corpus.reviews.book, threshold)
        record["filter"] = {
            "threshold": threshold,
            "valid_micro_f1_by_threshold": {str(k): v for k, v in scores.items()},
            **filter_report(
                corpus.reviews, corpus.similarity, keep, corpus.table["title"].tolist()
            ),
        }
        test_reviewed = np.isin(test, corpus.reviews.book[keep])
        record["test_has_kept_reviews"] = test_reviewed.tolist()
        record["test_has_reviews"] = np.isin(test, corpus.reviews.book).tolist()
    feats_by_mode = {}
    for name, method, mode in _variants(corpus):
        if mode not in feats_by_mode:
            feats_by_mode[mode] = review_features(corpus, mode, threshold)
        feats = feats_by_mode[mode]
        start = time.perf_counter()
        model = fit_method(method, corpus, feats, parts, seed)
        pred = model.predict(feats.take(test))
        record["variants"][name] = {
            "method": method,
            "reviews": mode,
            "scores": all_scores(y.level1, y.level2, pred.l1, pred.l2),
            "per_genre_f1": per_genre_table(y.level2, pred.l2, corpus.labels.genres),
            "example_f1": example_f1(y.level1, y.level2, pred.l1, pred.l2).round(4).tolist(),
            "seconds": round(time.perf_counter() - start, 2),
        }
    return record


def summarize(cells: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (dataset, split, seed, variant) with the test scores."""
    rows = []
    for cell in cells:
        for name, v in cell["variants"].items():
            rows.append({"dataset": cell["dataset"], "split": cell["split"], "seed": cell["seed"],
                         "variant": name, **v["scores"]})  # fmt: skip
    return pd.DataFrame(rows)


def comparisons(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired tests: higemine vs flat baselines, filtered vs unfiltered / no reviews."""
    pairs = [("higemine", "flat_mlp"), ("higemine", "flat_logreg"), ("higemine", "hier_nograph")]
    review_pairs = [("higemine", "higemine[reviews=all]"), ("higemine", "higemine[reviews=none]"),
                    ("higemine[reviews=all]", "higemine[reviews=none]")]  # fmt: skip
    out = []
    for dataset in sorted({c["dataset"] for c in cells}):
        for split in SPLIT_KINDS:
            group = sorted((c for c in cells if c["dataset"] == dataset and c["split"] == split),
                           key=lambda c: c["seed"])  # fmt: skip
            if not group:
                continue
            for a, b in pairs + review_pairs:
                if a not in group[0]["variants"] or b not in group[0]["variants"]:
                    continue
                row: dict[str, Any] = {"dataset": dataset, "split": split, "a": a, "b": b}
                for metric in ("l2_micro_f1", "h_f1"):
                    t = paired_arrays(
                        np.array([c["variants"][a]["scores"][metric] for c in group]),
                        np.array([c["variants"][b]["scores"][metric] for c in group]),
                    )
                    row[f"{metric}_diff"] = t.diff
                    row[f"{metric}_p_seeds"] = t.t_pvalue
                diffs = np.concatenate([
                    np.array(c["variants"][a]["example_f1"]) - np.array(c["variants"][b]["example_f1"])
                    for c in group
                ])  # fmt: skip
                row["book_hf1_diff"], row["book_p"], row["book_n"] = (
                    _mean(diffs),
                    sign_flip_test(diffs),
                    len(diffs),
                )
                if "test_has_kept_reviews" in group[0] and (a, b) in review_pairs:
                    mask = np.concatenate(
                        [np.array(c["test_has_kept_reviews"], dtype=bool) for c in group]
                    )
                    row["reviewed_book_hf1_diff"] = _mean(diffs[mask])
                    row["reviewed_book_p"] = sign_flip_test(diffs[mask])
                    row["reviewed_book_n"] = int(mask.sum())
                out.append(row)
    return out


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else 0.0


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def per_genre_frame(cells: list[dict[str, Any]]) -> pd.DataFrame:
    """Test F1 per (dataset, split, seed, variant, genre)."""
    rows = [
        {"dataset": c["dataset"], "split": c["split"], "seed": c["seed"], "variant": name,
         "genre": genre, "f1": f1}
        for c in cells for name, v in c["variants"].items() for genre, f1 in v["per_genre_f1"].items()
    ]  # fmt: skip
    return pd.DataFrame(rows)


def per_genre_markdown(
    per_genre: pd.DataFrame, variants: tuple[str, ...] = ("higemine", "flat_mlp", "flat_logreg")
) -> list[str]:
    """Per-genre F1 (mean over seeds) of a few variants, random split, one table per dataset."""
    lines: list[str] = []
    sub = per_genre[(per_genre["split"] == "random") & per_genre["variant"].isin(variants)]
    for dataset, g in sub.groupby("dataset", sort=False):
        table = g.groupby(["genre", "variant"])["f1"].mean().unstack("variant")
        table = table.reindex(columns=list(variants)).sort_values(variants[0], ascending=False)
        lines += ["", f"## Per-genre test F1, {dataset}, random split (mean over seeds)", "",
                  "| genre | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]  # fmt: skip
        for genre, row in table.iterrows():
            lines.append(f"| {genre} | " + " | ".join(f"{row[v]:.3f}" for v in variants) + " |")
    return lines


def results_markdown(
    frame: pd.DataFrame, tests: list[dict[str, Any]], filters: pd.DataFrame, per_genre: pd.DataFrame
) -> str:
    """The results table (mean ± std over seeds), the gap table and the significance table."""
    lines = ["## Test scores (mean ± std over seeds)", ""]
    header = "| dataset | split | variant | seeds | " + " | ".join(METRICS) + " |"
    lines += [header, "|" + "---|" * (4 + len(METRICS))]
    grouped = frame.groupby(["dataset", "split", "variant"], sort=False)
    for (dataset, split, variant), g in grouped:
        cells = " | ".join(
            _fmt(g[m].mean(), g[m].std(ddof=1) if len(g) > 1 else 0.0) for m in METRICS
        )
        lines.append(f"| {dataset} | {split} | {variant} | {len(g)} | {cells} |")
    lines += ["", "## Random minus author-disjoint (mean over seeds)", ""]
    lines += [
        "| dataset | variant | Δ l1_acc | Δ l2_micro_f1 | Δ l2_macro_f1 | Δ h_f1 |",
        "|---|---|---|---|---|---|",
    ]
    means = frame.groupby(["dataset", "variant", "split"])[list(METRICS)].mean()
    for (dataset, variant), g in means.groupby(level=[0, 1], sort=False):
        if {"random", "author"} <= set(g.index.get_level_values(2)):
            r, a = g.xs("random", level=2).iloc[0], g.xs("author", level=2).iloc[0]
            deltas = " | ".join(
                f"{r[m] - a[m]:+.3f}" for m in ("l1_acc", "l2_micro_f1", "l2_macro_f1", "h_f1")
            )
            lines.append(f"| {dataset} | {variant} | {deltas} |")
    lines += ["", "## Paired significance (a − b)", "",
              "p_seeds: paired t-test over seeds; p_books: sign-flip permutation test on per-book "
              "hierarchical F1 pooled over seeds (approximate: a book can be in several seeds' test sets).",
              "", "| dataset | split | a | b | Δ l2_micro_f1 (p_seeds) | Δ h_f1 (p_seeds) | Δ book h_f1 (p_books, n) | reviewed books only |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for t in tests:
        reviewed = (f"{t['reviewed_book_hf1_diff']:+.3f} (p={t['reviewed_book_p']:.3g}, n={t['reviewed_book_n']})"
                    if "reviewed_book_p" in t else "")  # fmt: skip
        lines.append(
            f"| {t['dataset']} | {t['split']} | {t['a']} | {t['b']} | {t['l2_micro_f1_diff']:+.3f} "
            f"(p={t['l2_micro_f1_p_seeds']:.3g}) | {t['h_f1_diff']:+.3f} (p={t['h_f1_p_seeds']:.3g}) | "
            f"{t['book_hf1_diff']:+.3f} (p={t['book_p']:.3g}, n={t['book_n']}) | {reviewed} |"
        )
    lines += per_genre_markdown(per_genre)
    if len(filters):
        lines += ["", "## Review filter (booklyn-books; threshold chosen on validation)", "",
                  "| split | seed | threshold | kept | dropped | books with kept reviews |", "|---|---|---|---|---|---|"]  # fmt: skip
        for r in filters.itertuples(index=False):
            lines.append(
                f"| {r.split} | {r.seed} | {r.threshold:.3f} | {r.kept} | {r.dropped} | {r.books_with_kept_reviews} |"
            )
    return "\n".join(lines) + "\n"


def plot(frame: pd.DataFrame, path: Path) -> None:
    """Bars of Level 2 micro F1 per variant, random vs author-disjoint, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(frame["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        sub = frame[frame["dataset"] == dataset]
        variants = list(dict.fromkeys(sub["variant"]))
        x = np.arange(len(variants))
        for k, split in enumerate(SPLIT_KINDS):
            stats = (
                sub[sub["split"] == split]
                .groupby("variant")["l2_micro_f1"]
                .agg(["mean", "std"])
                .reindex(variants)
            )
            ax.bar(
                x + (k - 0.5) * 0.38,
                stats["mean"],
                0.38,
                yerr=stats["std"].fillna(0),
                capsize=2,
                label=split,
            )
        ax.set_xticks(x, variants, rotation=35, ha="right", fontsize=8)
        ax.set_title(dataset)
        ax.set_ylabel("Level 2 micro F1 (test)")
        ax.legend(title="split", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


BookSet = Literal["goodreads-books", "booklyn-books"]
SplitKind = Literal["random", "author"]
BOOK_SETS: tuple[BookSet, ...] = ("goodreads-books", "booklyn-books")
SPLITS: tuple[SplitKind, ...] = ("random", "author")  # recfuse.classify.splits.SPLIT_KINDS


class HiGeMineConfig(StudyConfig):
    """The HiGeMine study: datasets, seeds, the frozen text model and an optional book limit."""

    datasets: list[BookSet] = Field(  # type: ignore[assignment]
        default_factory=lambda: list(BOOK_SETS), min_length=1
    )
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    model: str = Field("minilm", min_length=1)
    limit: int | None = Field(None, ge=20, description="keep the first N labelled books (tests)")
    splits: list[SplitKind] = Field(default_factory=lambda: list(SPLITS), min_length=1)


#: claims (a > b) tested per dataset and split, Holm-corrected together
CLAIMS = [("higemine", "flat_mlp"), ("higemine", "flat_logreg"), ("higemine", "hier_nograph"),
          ("higemine", "higemine[reviews=all]")]  # fmt: skip


class HiGeMineStudy(Study[HiGeMineConfig]):
    """One cell per (dataset, split, seed); each trains and scores every variant."""

    name = "higemine"
    config_type = HiGeMineConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # seconds: 200 goodreads books, one split, two seeds (numbers mean nothing)
        "tiny": {"datasets": ["goodreads-books"], "seeds": [0, 1], "limit": 200,
                 "splits": ["random"]},
        "full": {},
    }  # fmt: skip

    def __init__(self) -> None:
        self.corpora: dict[str, BookCorpus] = {}

    def prepare(self, config: HiGeMineConfig, folder: StudyFolder) -> None:
        for name in config.datasets:
            self.corpora[name] = load_corpus(name, config.model, config.limit)

    def inputs(self, cell: Cell, config: HiGeMineConfig) -> dict[str, Any]:
        corpus = self.corpora[cell.dataset]
        return {"books": fingerprint(corpus.table), "n_reviews": None if corpus.reviews is None
                else len(corpus.reviews.book)}  # fmt: skip

    def cells(self, config: HiGeMineConfig, done: Results) -> list[Cell]:
        return [Cell(split, seed, name) for name in config.datasets for split in config.splits
                for seed in config.seeds]  # fmt: skip

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        start = time.perf_counter()
        record = {"dataset": cell.dataset, **run_cell(self.corpora[cell.dataset], cell.arm_name,
                                                      cell.seed)}  # fmt: skip
        ctx.log(f"{cell.label()}: {time.perf_counter() - start:.0f} s higemine l2_micro_f1 "
                f"{record['variants']['higemine']['scores']['l2_micro_f1']:.3f}")  # fmt: skip
        metrics = {f"{name} {m}": v["scores"][m] for name, v in record["variants"].items()
                   for m in METRICS}  # fmt: skip
        return CellResult(metrics, None, {"record": record})

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        cells = [f.result.info["record"] for f in results.cells]
        frame = summarize(cells)
        with atomic_path(folder.path / "results.csv") as tmp:
            frame.to_csv(tmp, index=False)
        tests = comparisons(cells)
        write_json(folder.path / "significance.json", tests)
        filters = pd.DataFrame([
            {"split": c["split"], "seed": c["seed"], **{k: c["filter"][k] for k in
             ("threshold", "kept", "dropped", "books_with_kept_reviews")}}
            for c in cells if "filter" in c
        ])  # fmt: skip
        examples = [{"split": c["split"], "seed": c["seed"], **c["filter"]}
                    for c in cells if "filter" in c]  # fmt: skip
        if examples:
            write_json(folder.path / "filter_examples.json", examples[0])
        markdown = "# HiGeMine study\n\n" + results_markdown(
            frame, tests, filters, per_genre_frame(cells)
        )
        plot_path = folder.path / "l2_micro_f1.png"
        plot(frame, plot_path)
        print(f"results: {folder.path / 'results.md'}")
        return Summary(markdown, claim_verdicts(cells), [str(plot_path)])


def seed_comparison(group: list[dict[str, Any]], a: str, b: str, metric: str) -> Comparison:
    """``a`` against ``b`` on one dataset and split: a paired t-test over seeds."""
    test = paired_arrays(
        np.array([c["variants"][a]["scores"][metric] for c in group]),
        np.array([c["variants"][b]["scores"][metric] for c in group]),
        metric,
    )
    seeds = tuple(int(c["seed"]) for c in group)
    label = f"{group[0]['dataset']}/{group[0]['split']}"
    return Comparison(label, a, b, metric, seeds, test, test.t_pvalue)


def claim_verdicts(cells: list[dict[str, Any]], metric: str = "h_f1") -> list[Verdict]:
    """One verdict per claim (a > b in hierarchical F1) per dataset and split."""
    out: list[Verdict] = []
    keys = dict.fromkeys((c["dataset"], c["split"]) for c in cells)
    for dataset, split in keys:
        group = sorted((c for c in cells if c["dataset"] == dataset and c["split"] == split),
                       key=lambda c: c["seed"])  # fmt: skip
        pairs = [(a, b) for a, b in CLAIMS if {a, b} <= set(group[0]["variants"])]
        raw = [seed_comparison(group, a, b, metric) for a, b in pairs]
        adjusted = holm([c.test.t_pvalue for c in raw])
        for cmp, p in zip(raw, adjusted, strict=True):
            cmp = Comparison(cmp.dataset, cmp.arm, cmp.reference, metric, cmp.seeds, cmp.test, p)
            out.append(verdict(f"{cmp.dataset}: {cmp.arm} > {cmp.reference} ({metric})", cmp))
    return out
