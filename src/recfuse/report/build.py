"""`recfuse report FOLDER`: one self-contained HTML page for a run folder or a study folder.

A run folder (``recfuse run``, ``study baselines``) has ``metrics.json``; a study folder (the
Study skeleton) has ``results.json`` and ``cells/``. The page shows what the folder holds and
nothing it does not: config, data and split, metrics at every K, slices, training curves,
significance, verdicts and the study's own plots.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from recfuse import atomic
from recfuse.errors import RecfuseError
from recfuse.report import html as h

METRIC_AT_K = re.compile(r"^(?P<name>[A-Za-z]+)@(?P<k>\d+)$")


def build_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` (or ``out``) for ``folder``; return its path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RecfuseError(f"{folder}: not a folder")
    if (folder / "metrics.json").exists():
        page = run_page(folder)
    elif (folder / "results.json").exists() or (folder / "results.md").exists():
        page = study_page(folder)
    else:
        raise RecfuseError(
            f"{folder}: not a run or study folder (expected metrics.json or results.json)"
        )
    target = Path(out) if out is not None else folder / "report.html"
    atomic.write_text(target, page.render())
    return target


# ----------------------------------------------------------------------------- run folders


def run_page(folder: Path) -> h.Page:
    metrics = _read_json(folder / "metrics.json")
    config = _read_yaml(folder / "config.yaml")
    name = str(config.get("name", folder.name))
    dataset = (config.get("data") or {}).get("name") or "own data"
    page = h.Page(f"recfuse run: {name}", f"{folder.name} · dataset {dataset}")
    page.add("Summary", h.table(summary_frame(metrics)))
    page.add("Metrics at every K (test)", metrics_at_k(metrics, "test"))
    page.add("Metrics at every K (validation)", metrics_at_k(metrics, "valid"))
    slices = slice_tables(folder, list(metrics))
    if slices:
        page.add("Slices (test)", slices)
    if (folder / "training_history.json").exists():
        history = _read_json(folder / "training_history.json")
        page.add("Training curves", training_curves(history))
    significance = significance_table(folder, list(metrics))
    if significance:
        page.add("Significance", significance)
    page.add("Data and split", data_and_split(folder))
    page.add("Config", h.pre(yaml.safe_dump(config, sort_keys=False)))
    _add_versions(page, folder)
    return page


def summary_frame(metrics: dict[str, Any]) -> pd.DataFrame:
    """One row per model: protocol, validation NDCG@10 and the main test metrics."""
    rows = []
    for model, m in metrics.items():
        test, valid = m.get("test", {}), m.get("valid", {})
        rows.append(
            {
                "model": model,
                "protocol": m.get("protocol", "full"),
                "valid NDCG@10": valid.get("NDCG@10"),
                **{k: test.get(k) for k in ("NDCG@10", "Recall@10", "MRR", "Coverage@10")},
                "fit s": m.get("fit_seconds"),
            }
        )
    return pd.DataFrame(rows)


def metrics_at_k(metrics: dict[str, Any], stage: str) -> str:
    """Per model: a metric × K table of every metric computed at K, plus the K-free ones."""
    parts = []
    for model, m in metrics.items():
        values: dict[str, float] = m.get(stage, {})
        at_k: dict[str, dict[int, float]] = {}
        flat: dict[str, float] = {}
        for key, value in values.items():
            match = METRIC_AT_K.match(key)
            if match:
                at_k.setdefault(match["name"], {})[int(match["k"])] = value
            elif key != "users":
                flat[key] = value
        frame = pd.DataFrame(at_k).T.sort_index(axis=1)
        frame.columns = [f"@{k}" for k in frame.columns]
        frame = frame.reset_index(names="metric")
        extra = ", ".join(f"{k} {v:.4f}" for k, v in flat.items())
        users = values.get("users")
        note = (
            f"{model} ({m.get('protocol', 'full')} ranking, {int(users) if users else '?'} users)"
        )
        parts.append(f"<h3>{h.esc(note)}</h3>{h.table(frame)}<p>{h.esc(extra)}</p>")
    return "".join(parts)


def slice_tables(folder: Path, models: list[str]) -> str:
    """The per-model slice tables, in the metrics table's model order, labelled by model."""
    parts = []
    for model in models:
        slug = model.lower()
        frame = _read_slices(folder, slug)
        if frame is not None:
            parts.append(f"<h3>{h.esc(model)}</h3>{h.table(frame)}")
    return "".join(parts)


def _read_slices(folder: Path, slug: str) -> pd.DataFrame | None:
    if (folder / f"slices_{slug}.json").exists():
        return pd.DataFrame(_read_json(folder / f"slices_{slug}.json"))
    md = folder / f"slices_{slug}.md"
    if not md.exists():
        return None
    return markdown_table(md.read_text(encoding="utf-8"))


def markdown_table(text: str) -> pd.DataFrame:
    """Parse a pipe table as written by `metrics_markdown` (header, rule, rows)."""
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.strip().startswith("|")
    ]
    if len(rows) < 2:
        return pd.DataFrame()
    frame = pd.DataFrame(rows[2:], columns=rows[0])
    for col in frame.columns[1:]:
        converted = pd.to_numeric(frame[col], errors="coerce")
        if converted.notna().all():
            frame[col] = converted
    return frame


def training_curves(history: list[dict[str, float]]) -> str:
    """Loss and validation metric per epoch (one run: there are no error bars)."""
    if not history:
        return '<p class="meta">(no epochs recorded)</p>'
    frame = pd.DataFrame(history)
    metric = next((c for c in frame.columns if c not in ("epoch", "loss")), None)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["loss"] + ([metric] if metric else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    for ax, column in zip(axes[0], panels, strict=True):
        ax.plot(frame["epoch"] + 1, frame[column], marker="o", markersize=3, color="#4c72b0")
        ax.set_xlabel("epoch")
        ax.set_ylabel(column if column == "loss" else f"validation {column}")
        ax.grid(alpha=0.3)
    fig.suptitle("Training curves (one run, no error bars)", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    best = frame.loc[frame[metric].idxmax()] if metric else None
    note = (
        f"{len(frame)} epochs; best validation {metric} {best[metric]:.4f} at epoch "
        f"{int(best['epoch']) + 1} (the weights kept)"
        if best is not None
        else f"{len(frame)} epochs"
    )
    return h.image(buffer.getvalue(), note)


def significance_table(folder: Path, models: list[str], metric: str = "NDCG@10") -> str:
    """With several models: each against the best by test mean, paired over users, Holm."""
    from recfuse.evaluation.significance import holm, paired_test

    frames = {}
    for model in models:
        path = folder / f"per_user_test_{model.lower()}.parquet"
        if path.exists():
            frames[model] = pd.read_parquet(path)
    if len(frames) < 2:
        return ""
    best = max(frames, key=lambda m: frames[m][metric].mean())
    tests = [(m, paired_test(frames[m], frames[best], metric)) for m in frames if m != best]
    adjusted = holm([t.t_pvalue for _, t in tests])
    rows = [
        {
            "model": m,
            f"{metric}": t.mean_a,
            f"{best} {metric}": t.mean_b,
            "diff": t.diff,
            "users": t.n_users,
            "paired t p": t.t_pvalue,
            "Holm p": p,
            "Wilcoxon p": t.wilcoxon_pvalue,
        }
        for (m, t), p in zip(tests, adjusted, strict=True)
    ]
    intro = (
        f"<p>Each model against the best one ({h.esc(best)}) on per-user test {metric}, "
        "paired over users; p-values Holm-adjusted across the comparisons.</p>"
    )
    return intro + h.table(pd.DataFrame(rows))


def data_and_split(folder: Path) -> str:
    parts = []
    if (folder / "dataset.json").exists():
        stats = _read_json(folder / "dataset.json")
        parts.append("<h3>Dataset</h3>" + h.table(_kv_frame(stats)))
    split_json = folder / "split" / "split.json"
    if split_json.exists():
        parts.append("<h3>Split</h3>" + h.table(_kv_frame(_read_json(split_json))))
    return "".join(parts) or '<p class="meta">(no dataset or split summary in this folder)</p>'


# ----------------------------------------------------------------------------- study folders


def study_page(folder: Path) -> h.Page:
    config = _read_yaml(folder / "config.yaml") if (folder / "config.yaml").exists() else {}
    results = _read_json(folder / "results.json") if (folder / "results.json").exists() else {}
    name = str(config.get("study", folder.name))
    datasets = ", ".join(config.get("datasets", []) or [])
    page = h.Page(f"recfuse study: {name}", f"{folder.name} · {datasets}".strip(" ·"))
    verdicts = results.get("verdicts", [])
    if verdicts:
        page.add("Verdicts", verdict_list(verdicts))
    if (folder / "results.md").exists():
        page.add("Results", h.markdown((folder / "results.md").read_text(encoding="utf-8")))
    plots = study_plots(folder, results.get("plots", []))
    if plots:
        page.add("Plots", plots)
    cells = pd.DataFrame(results.get("cells", []))
    if not cells.empty:
        page.add("Every cell", h.table(cells))
    if config:
        page.add("Config", h.pre(yaml.safe_dump(config, sort_keys=False)))
    _add_versions(page, folder)
    return page


def verdict_list(verdicts: list[dict[str, str]]) -> str:
    items = [
        f'<li><b>{h.esc(v["claim"])}</b>: <span class="{h.status_class(v["status"])}">'
        f"{h.esc(v['status'])}</span> — {h.esc(v.get('evidence', ''))}</li>"
        for v in verdicts
    ]
    rule = (
        '<p class="meta">A claim holds only with ≥ 3 seeds and a significant paired test '
        "(p &lt; 0.05, Holm-adjusted where several arms share a reference) in its direction.</p>"
    )
    return f"{rule}<ul>{''.join(items)}</ul>"


def study_plots(folder: Path, listed: list[str]) -> str:
    """The study's plots: those results.json lists first, then any other PNG in the folder."""
    paths = [folder / p for p in listed if (folder / p).suffix == ".png"]
    paths += sorted(p for p in folder.glob("*.png") if p not in paths)
    return "".join(h.image(p, p.stem.replace("_", " ")) for p in paths if p.exists())


# ----------------------------------------------------------------------------- helpers


def _add_versions(page: h.Page, folder: Path) -> None:
    if (folder / "versions.json").exists():
        page.add("Versions", h.table(_kv_frame(_read_json(folder / "versions.json"))))


def _kv_frame(mapping: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame({"field": list(mapping), "value": [_cell(v) for v in mapping.values()]})


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecfuseError(f"{path}: cannot read JSON ({exc})") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except yaml.YAMLError:
        raise RecfuseError(f"{path}: invalid YAML") from None
    return loaded if isinstance(loaded, dict) else {}
