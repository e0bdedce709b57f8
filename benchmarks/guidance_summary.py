"""One figure and one table over finished guidance studies: each arm's NDCG@10 gain over no
guidance, per slice, at the lambda validation chose.

    python benchmarks/guidance_summary.py RUN_FOLDER [RUN_FOLDER ...] --out docs/guidance_gain_summary.png

Reads each folder's finished cells and config.yaml and picks lambda with the study's own
`final_results` (no training, seconds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import yaml

from recfuse import atomic
from recfuse.runs.study import Results, StudyFolder
from recfuse.studies.guidance import GuidanceConfig, final_results
from recfuse.studies.guidance_report import gain_bars


def final_frame(path: Path) -> tuple[str, pd.DataFrame]:
    """(panel title, one row per (arm, seed) at the lambda the study chose) of one folder."""
    tree = yaml.safe_load((path / "config.yaml").read_text())
    config = GuidanceConfig(**{k: v for k, v in tree.items() if k not in ("study", "version")})
    folder = StudyFolder(path)
    cells = [folder.read(p.stem) for p in sorted(folder.cells_dir.glob("*.json"))]
    final = final_results(Results([c for c in cells if c is not None]), config).frame()
    sample = f" ({config.max_users} users)" if config.max_users else ""
    return f"{config.datasets[0]}{sample}, {config.backbone}, {config.teacher}", final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/guidance_gain_summary.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [final_frame(f) for f in args.folders]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False)
    for ax, (title, frame) in zip(axes[:, 0], panels, strict=True):
        gain_bars(ax, frame)
        ax.set_title(title, fontsize=9)
        table = frame.pivot_table(index="arm", values="NDCG@10", aggfunc=["mean", "std"])
        print(f"\n{title}\n{table.round(4).to_string()}")
    axes[0, 0].legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.suptitle("NDCG@10 gain over no guidance (error bars: std over 3 seeds)", fontsize=10)
    fig.tight_layout()
    with atomic.atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
