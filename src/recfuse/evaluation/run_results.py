"""Reading evaluated run folders: which models they hold, on which data, split and protocol.

A run folder (``recfuse run``) or a study folder (``recfuse study baselines``) holds
``metrics.json`` (model name -> valid/test metrics and protocol), ``per_user_test_<model>.parquet``,
``slices_<model>.md`` and the split under ``split/``. Comparing two runs is only meaningful on the
same users of the same data with the same held-out targets under the same protocol; `RunResults`
exposes exactly those identities so `check_comparable` can refuse anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from recfuse.data.fingerprint import interactions_fingerprint
from recfuse.errors import DataError, RecfuseError


def model_slug(name: str) -> str:
    return name.lower()


@dataclass(frozen=True)
class RunResults:
    """One model's results inside a run folder.

    ``RUN#MODEL`` names a model of a multi-model folder; ``model`` (e.g. ``--model EASE``)
    does the same for every folder that holds several.
    """

    folder: Path
    model: str

    @classmethod
    def open(cls, spec: str | Path, model: str | None = None) -> RunResults:
        text = str(spec)
        if "#" in text:
            text, model = text.split("#", 1)
        folder = Path(text)
        names = list(read_metrics(folder))
        if model is None:
            if len(names) != 1:
                raise RecfuseError(
                    f"{folder}: holds models {', '.join(names)}; pick one with --model NAME "
                    f"or {folder}#NAME"
                )
            model = names[0]
        matches = [n for n in names if model_slug(n) == model_slug(model)]
        if not matches:
            raise RecfuseError(f"{folder}: no model {model!r} (it holds {', '.join(names)})")
        return cls(folder, matches[0])

    @property
    def label(self) -> str:
        return f"{self.model} ({self.folder.name})"

    @cached_property
    def entry(self) -> dict[str, Any]:
        return read_metrics(self.folder)[self.model]

    @property
    def protocol(self) -> str:
        return str(self.entry.get("protocol", "full"))

    def per_user(self) -> pd.DataFrame:
        path = self.folder / f"per_user_test_{model_slug(self.model)}.parquet"
        if not path.is_file():
            raise DataError(f"{path}: not found (per-user results of {self.model})")
        return pd.read_parquet(path)

    @cached_property
    def split_meta(self) -> dict[str, Any]:
        path = self.folder / "split" / "split.json"
        if not path.is_file():
            raise DataError(f"{path}: not found; without its split a run cannot be compared")
        return dict(json.loads(path.read_text()))

    def _parts(self) -> dict[str, pd.DataFrame]:
        return {
            p: pd.read_parquet(self.folder / "split" / f"split_{p}.parquet")
            for p in ("train", "valid", "test")
        }

    @cached_property
    def identities(self) -> dict[str, str]:
        """``data``: fingerprint of all interactions (by index); ``split``: of the held-out
        targets with the protocol; ``dataset``: the raw-id fingerprint when the run wrote one."""
        parts = self._parts()
        n_items = int(self.split_meta["n_items"])
        out = {
            "data": interactions_fingerprint(list(parts.values()), range(n_items)),
            "split": str(self.split_meta["protocol"])
            + ":"
            + interactions_fingerprint([parts["valid"], parts["test"]], range(n_items)),
        }
        dataset_json = self.folder / "dataset.json"
        if dataset_json.is_file():
            fingerprint = json.loads(dataset_json.read_text()).get("fingerprint")
            if fingerprint:
                out["dataset"] = str(fingerprint)
        return out


def read_metrics(folder: Path) -> dict[str, Any]:
    path = folder / "metrics.json"
    if not path.is_file():
        raise DataError(f"{path}: not found (is {folder} a run folder?)")
    return dict(json.loads(path.read_text()))


def check_comparable(base: RunResults, other: RunResults) -> None:
    """`RecfuseError` unless both runs share dataset, split and protocol (each checked)."""
    a, b = base.identities, other.identities
    what = f"{base.label} and {other.label}"
    if a["data"] != b["data"] or a.get("dataset", b.get("dataset")) != b.get(
        "dataset", a.get("dataset")
    ):
        raise RecfuseError(
            f"cannot compare {what}: different datasets (fingerprints "
            f"{a.get('dataset', a['data'])} vs {b.get('dataset', b['data'])})"
        )
    if a["split"] != b["split"]:
        raise RecfuseError(
            f"cannot compare {what}: different splits ({base.split_meta['protocol']} seed "
            f"{base.split_meta['seed']} vs {other.split_meta['protocol']} seed "
            f"{other.split_meta['seed']}; their held-out targets differ)"
        )
    if base.protocol != other.protocol:
        raise RecfuseError(
            f"cannot compare {what}: different protocols ({base.protocol} vs {other.protocol})"
        )


def compare_runs(specs: list[str], model: str | None, metrics: list[str]) -> str:
    """The text of `recfuse eval compare`: each run against the first, Holm across runs."""
    from recfuse.evaluation.significance import holm, paired_test

    if len(specs) < 2:
        raise RecfuseError("eval compare needs at least two runs")
    results = [RunResults.open(s, model) for s in specs]
    base = results[0]
    for other in results[1:]:
        check_comparable(base, other)
    frames = [r.per_user() for r in results]
    lines = [
        f"baseline: {base.label}; protocol {base.protocol}; dataset "
        f"{base.identities.get('dataset', base.identities['data'])}; split "
        f"{base.split_meta['protocol']} seed {base.split_meta['seed']}"
    ]
    for m in metrics:
        tests = [paired_test(frames[0], frame, m) for frame in frames[1:]]
        adjusted = holm([t.t_pvalue for t in tests])
        adjusted_w = holm([t.wilcoxon_pvalue for t in tests])
        lines.append(f"{m} (Holm over {len(tests)} comparison(s)):")
        for other, t, p, pw in zip(results[1:], tests, adjusted, adjusted_w, strict=True):
            lines.append(
                f"  {base.model} {t.mean_a:.4f} vs {other.label} {t.mean_b:.4f} "
                f"(run - baseline {-t.diff:+.4f}, n={t.n_users}) paired t p={t.t_pvalue:.3g} "
                f"[Holm {p:.3g}], Wilcoxon p={t.wilcoxon_pvalue:.3g} [Holm {pw:.3g}]"
            )
    return "\n".join(lines)


def metric_table(metrics: dict[str, float]) -> tuple[list[str], list[dict[str, Any]]]:
    """Metrics as rows by family (NDCG, Recall, ...) and columns by K: every K that was computed.

    Returns:
        the K columns (``@5``, ``@10``, ...) and one row per family, with ``all`` for metrics
        without a cut-off (MRR).
    """
    ks: list[int] = sorted({int(k) for k in (n.partition("@")[2] for n in metrics) if k.isdigit()})
    families: dict[str, dict[str, Any]] = {}
    for name, value in metrics.items():
        if name == "users":
            continue
        family, _, k = name.partition("@")
        families.setdefault(family, {"metric": family})[f"@{k}" if k else "all"] = value
    columns = [f"@{k}" for k in ks]
    if any("all" in row for row in families.values()):
        columns.append("all")
    return columns, list(families.values())


def show_run(folder: Path, model: str | None = None) -> str:
    """The text of `recfuse eval show`: every metric at every K, then each model's slices."""
    from recfuse.evaluation.markdown import metrics_markdown

    metrics = read_metrics(folder)
    names = [RunResults.open(folder, model).model] if model else list(metrics)
    out = []
    for stage in ("test", "valid"):
        rows: list[dict[str, Any]] = []
        columns: list[str] = []
        for name in names:
            values = metrics[name].get(stage, {})
            cols, fam_rows = metric_table(values)
            columns += [c for c in cols if c not in columns]
            head = {
                "model": name,
                "protocol": metrics[name].get("protocol", "full"),
                "users": int(values.get("users", 0)),
            }
            rows += [{**head, **row} for row in fam_rows]
        table = metrics_markdown(rows, ["model", "protocol", "users", "metric", *columns])
        out.append(f"## {stage}\n\n" + table)
    for name in names:  # the metrics table's order
        path = folder / f"slices_{model_slug(name)}.md"
        if path.is_file():
            out.append(f"## slices: {name} (test)\n\n" + path.read_text())
    return "\n".join(out)
