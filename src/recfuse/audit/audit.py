"""Run the three probes on an `AuditTable` over seeds; one JSON record per seed (resumable)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from recfuse.atomic import atomic_path, write_json
from recfuse.audit.learner import NetConfig
from recfuse.audit.probes import (
    GroupFitter,
    context_only_predict,
    fit_predict_target,
    knn_group_fitter,
    network_group_fitter,
    out_of_fold_probabilities,
    score,
    shuffled_labels,
    sparse_top_k,
    who_made_it,
    with_context,
)
from recfuse.audit.splits import (
    bemis_murcko_scaffolds,
    group_disjoint_split,
    random_split,
    scaffold_split,
    similarity_clusters,
    similarity_split,
)
from recfuse.audit.table import AuditTable
from recfuse.errors import ConfigError

GROUP_SPLIT = "group_disjoint"


@dataclass(frozen=True)
class AuditConfig:
    """What the audit runs. The networks are fixed small MLPs; nothing is tuned on test rows.

    Attributes:
        seeds: one full audit (splits, folds, networks) per seed.
        fractions: train / valid / test shares of every split.
        n_folds: folds for the out-of-fold group probabilities.
        min_group_rows: groups with fewer rows are not probe classes (they cannot be named).
        top_k_probs: group probabilities kept per row as the group-only model's input.
        ks: top-k accuracies reported by the who-made-it probe.
        group_only_on_group_split: also run probe 2 under the group-disjoint split (shows
            whether that split removes the shortcut).
        probe: the group probe, ``knn`` (cosine neighbours; default, strongest with few rows
            per group) or ``mlp``.
        n_neighbors: neighbours of the k-NN probe.
        target_net: the MLP of the baseline and the group-only model.
        probe_net: the MLP of the ``mlp`` group probe (fixed epochs, no early stopping).
    """

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    n_folds: int = 5
    min_group_rows: int = 2
    top_k_probs: int = 32
    ks: tuple[int, ...] = (1, 5)
    group_only_on_group_split: bool = True
    probe: str = "knn"
    n_neighbors: int = 10
    target_net: NetConfig = field(default_factory=NetConfig)
    probe_net: NetConfig = field(default_factory=lambda: NetConfig(epochs=20))

    def __post_init__(self) -> None:
        if self.probe not in ("knn", "mlp"):
            raise ConfigError(f"probe: unknown {self.probe!r}; known: knn, mlp")
        if self.n_folds < 2:
            raise ConfigError(f"n_folds must be at least 2, not {self.n_folds}")
        if not self.seeds:
            raise ConfigError("seeds: need at least one seed")

    def group_fitter(
        self, x: sp.csr_matrix, codes: np.ndarray, n_classes: int, seed: int
    ) -> GroupFitter:
        """The configured group probe as a fitter."""
        if self.probe == "knn":
            return knn_group_fitter(x, codes, n_classes, self.n_neighbors)
        return network_group_fitter(x, codes, n_classes, seed, self.probe_net)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _splits(
    table: AuditTable, seed: int, config: AuditConfig, clusters: StructureClusters
) -> dict[str, np.ndarray]:
    """Random and group-disjoint splits, plus a structure split: scaffold for molecules,
    near-duplicate clusters for anything else."""
    parts = {
        "random": random_split(table.n_rows, config.fractions, seed),
        GROUP_SPLIT: group_disjoint_split(table.groups, config.fractions, seed),
    }
    if clusters.name == "scaffold":
        parts["scaffold"] = scaffold_split([], config.fractions, seed, scaffolds=clusters.ids)  # type: ignore[arg-type]
    else:
        parts[clusters.name] = similarity_split(clusters.ids, config.fractions, seed)  # type: ignore[arg-type]
    return parts


@dataclass(frozen=True)
class StructureClusters:
    """Rows that a structure split keeps together: scaffolds (molecules) or near-duplicates."""

    name: str
    ids: list[object]
    threshold: float | None = None


def structure_clusters(table: AuditTable) -> StructureClusters:
    """Bemis–Murcko scaffolds for SMILES; otherwise near-duplicate clusters of the features
    (TF-IDF fitted on all rows here: the split's definition uses no target and no group)."""
    if table.smiles is not None:
        return StructureClusters("scaffold", list(bemis_murcko_scaffolds(table.smiles)))
    ids, threshold = similarity_clusters(table.features(np.arange(table.n_rows)))
    return StructureClusters("similarity", ids.tolist(), threshold)


def save_splits(
    table: AuditTable, seed: int, config: AuditConfig, clusters: StructureClusters, path: Path
) -> None:
    """The seed's part arrays (0 train, 1 valid, 2 test; one int8 array per split), atomically."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez_compressed(fh, **_splits(table, seed, config, clusters))  # type: ignore[arg-type]


def audit_seed(
    table: AuditTable, seed: int, config: AuditConfig, clusters: StructureClusters | None = None
) -> dict[str, object]:
    """All probes for one seed. Returns a JSON-able record: per split, the baseline, the
    context-only null, the group-only model, the who-made-it probe and (random split) the
    shuffled-label control."""
    clusters = clusters or structure_clusters(table)
    codes, names = table.group_labels(config.min_group_rows)
    n_classes = len(names)
    record: dict[str, object] = {
        "seed": seed,
        "n_rows": table.n_rows,
        "n_group_classes": n_classes,
        "structure_split": {
            "name": clusters.name,
            "threshold": clusters.threshold,
            "clusters": len(set(clusters.ids)),
        },
    }
    splits: dict[str, object] = {}
    for split_name, parts in _splits(table, seed, config, clusters).items():
        started = time.perf_counter()
        train = np.flatnonzero(parts == 0)
        test = np.flatnonzero(parts == 2)
        y_test = table.target[test]
        x = table.features(train)
        out: dict[str, object] = {
            "sizes": [int((parts == k).sum()) for k in range(3)],
            "null": score(
                table.task,
                y_test,
                context_only_predict(
                    table.context, table.target, table.task, table.n_classes, parts
                ),
            ),
            "baseline": score(
                table.task,
                y_test,
                fit_predict_target(
                    with_context(table.context, table.n_contexts, x),
                    table.target,
                    table.task,
                    table.n_classes,
                    parts,
                    seed,
                    config.target_net,
                ),
            ),
        }
        run_group_probe = split_name != GROUP_SPLIT or config.group_only_on_group_split
        if run_group_probe and n_classes >= 2:
            fit = config.group_fitter(x, codes, n_classes, seed)
            probs, _, full = out_of_fold_probabilities(
                fit, train, table.n_rows, config.n_folds, seed
            )
            # Probe 1 needs the test groups seen in training; a group-disjoint split has none.
            if split_name != GROUP_SPLIT:
                out["who_made_it"] = who_made_it(full, codes, train, test, config.ks)
            group_x = with_context(
                table.context, table.n_contexts, sparse_top_k(probs, config.top_k_probs)
            )
            out["group_only"] = score(
                table.task,
                y_test,
                fit_predict_target(
                    group_x,
                    table.target,
                    table.task,
                    table.n_classes,
                    parts,
                    seed,
                    config.target_net,
                ),
            )
        if split_name == "random" and n_classes >= 2:
            control_codes = shuffled_labels(codes, seed)
            control = config.group_fitter(x, control_codes, n_classes, seed)
            out["shuffled_control"] = who_made_it(
                control(train), control_codes, train, test, config.ks
            )
        out["seconds"] = round(time.perf_counter() - started, 1)
        splits[split_name] = out
    record["splits"] = splits
    return record


def _seed_path(folder: Path, seed: int) -> Path:
    return folder / "seeds" / f"seed_{seed}.json"


def _split_path(folder: Path, seed: int) -> Path:
    return folder / "splits" / f"seed_{seed}.npz"


def _without_seeds(config_json: object) -> object:
    """A seed's record does not depend on which other seeds were run alongside it."""
    if isinstance(config_json, dict):
        return {k: v for k, v in config_json.items() if k != "seeds"}
    return config_json


def _reusable(
    folder: Path, seed: int, config_json: object, table: AuditTable, expected: list[str]
) -> bool:
    """A saved seed is reused only for the same config, table, row count and splits."""
    path = _seed_path(folder, seed)
    if not path.is_file():
        return False
    saved = json.loads(path.read_text())
    record = saved.get("record", {})
    return (
        _without_seeds(saved.get("config")) == _without_seeds(config_json)
        and saved.get("table") == table.name
        and record.get("n_rows") == table.n_rows  # another subsample is another table
        and sorted(record.get("splits", {})) == expected
    )


def run_audit(
    table: AuditTable, config: AuditConfig, out_dir: str | Path | None = None, progress: bool = True
) -> list[dict[str, object]]:
    """Audit every seed of ``config``; with ``out_dir``, each seed's record is written to
    ``out_dir/seeds/seed_<s>.json`` as it finishes and reused on a rerun with the same config,
    and its splits to ``out_dir/splits/seed_<s>.npz``."""
    clusters = structure_clusters(table)
    expected = sorted(["random", GROUP_SPLIT, clusters.name])
    config_json = json.loads(json.dumps(config.to_json()))
    records = []
    for seed in tqdm(config.seeds, desc=f"audit {table.name}", disable=not progress):
        folder = Path(out_dir) if out_dir is not None else None
        if folder is not None and _reusable(folder, seed, config_json, table, expected):
            records.append(json.loads(_seed_path(folder, seed).read_text())["record"])
            if not _split_path(folder, seed).is_file():
                save_splits(table, seed, config, clusters, _split_path(folder, seed))
            continue
        record = audit_seed(table, seed, config, clusters)
        if folder is not None:
            save_splits(table, seed, config, clusters, _split_path(folder, seed))
            write_json(
                _seed_path(folder, seed),
                {"config": config_json, "table": table.name, "record": record},
            )
        records.append(record)
    return records
