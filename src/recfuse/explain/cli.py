"""`recfuse explain --run R --user U`: explain one recommendation of a run (see docs/xai.md)."""

from __future__ import annotations

from pathlib import Path

import typer


def explain(
    run: Path = typer.Option(..., "--run", help="Run folder (or saved model folder)."),
    user: str = typer.Option(..., "--user", help="Raw user id, e.g. 196."),
    out: Path | None = typer.Option(None, "--out", help="Folder to write (default RUN/explain-U)."),
    rounds: int = typer.Option(3, min=0, max=30, help="Agent rounds after round 0."),
    seeds: str = typer.Option(
        "0", help='Agent sampling seeds, e.g. "0 1 2" (one trajectory each).'
    ),
    candidates: int = typer.Option(50, min=2, help="The run model's top-N the ranker re-orders."),
    rank: int = typer.Option(1, min=1, help="Which of the ranker's recommendations to explain."),
    backend: str = typer.Option("auto", help="LLM backend kind (auto: CTranslate2 if installed)."),
    model: str = typer.Option("smollm2", help="LLM of the agent and the judges."),
    threads: int | None = typer.Option(None, help="torch / LLM threads"),
) -> None:
    """Explain the re-ranked top recommendation for a user: SHAP, agent rounds, scores."""
    from recfuse.errors import ConfigError
    from recfuse.explain.ranker_agent import ExplainSettings, explain_recommendation
    from recfuse.llm import load_llm

    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        seed_list = tuple(int(s) for s in seeds.replace(",", " ").split())
    except ValueError:
        raise ConfigError(f"--seeds: whole numbers separated by spaces, got {seeds!r}") from None
    if not seed_list:
        raise ConfigError("--seeds: give at least one seed")
    settings = ExplainSettings(rounds=rounds, seeds=seed_list, candidates=candidates, rank=rank)
    folder = out or Path(run) / f"explain-{user}"
    options = {"threads": threads} if threads else {}
    result = explain_recommendation(
        run, user, folder, settings, make_llm=lambda: load_llm(backend, model, **options)
    )
    typer.echo(report_lines(result))
    typer.echo(f"written: {folder}/explanation.md, explanation.json, ledger.db")


def report_lines(result: dict) -> str:  # type: ignore[type-arg]
    """What the command prints: the recommendation, each round's text and scores, the choice."""
    rk = result["ranker"]
    lines = [
        f'user {result["user"]}: "{result["title"]}" (item {result["item"]}), ranker output '
        f"{rk['margin']:+.2f} log-odds",
        "SHAP: " + ", ".join(f"{f} {v:+.2f}" for f, v in rk["shap"].items()),
    ]
    for traj in result["trajectories"]:
        for row in traj["rounds"]:
            tool = f" [{row['tool']['name']}]" if row["tool"] else ""
            c = row["checks"]
            lines += [
                f"--- seed {traj['seed']} round {row['round']}{tool}: panel {row['panel']:.2f}/7, "
                f"grounded {c['groundedness']:.2f}, specific {c['specificity']:.2f}, "
                f"concise {c['conciseness']:.2f}, attribution {c['attribution']:.2f}",
                row["text"] or "(empty)",
            ]
        lines.append(f"=== seed {traj['seed']}: chosen round {traj['chosen']} (early stopping)")
    return "\n".join(lines)
