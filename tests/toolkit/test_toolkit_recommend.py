"""recommend / export agree with score + masking; the CLI answers in raw ids, fast to start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recfuse.data import Dataset
from recfuse.runs import load_run
from recfuse.runs.export import export_topk


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``recfuse ARGS`` in this process (a subprocess would import torch again)."""
    import contextlib
    import io

    from recfuse import cli

    out, err, code = io.StringIO(), io.StringIO(), 0
    saved = sys.argv
    sys.argv = ["recfuse", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = saved
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_export_and_recommend_agree_with_masked_scores(
    ease_run: Path, ml100k: Dataset, tmp_path: Path
) -> None:
    model = load_run(ease_run)
    out = tmp_path / "topk.parquet"
    stats = export_topk(model, out, k=10, batch_users=100, progress=False)
    frame = pd.read_parquet(out)
    assert stats.users == ml100k.n_users and len(frame) == 10 * ml100k.n_users
    everything = ml100k.interactions
    item_ids = ml100k.items["item_id"].astype(str).to_numpy()
    for user in (0, 195, 942):
        raw_user = str(ml100k.users["user_id"].iloc[user])
        seen = everything.loc[everything["user"] == user, "item"].to_numpy()
        scores = model.score(np.array([user]), [seen])[0].astype(np.float64)
        scores[seen] = -np.inf
        expected = np.sort(scores)[::-1][:10]
        rows = frame[frame["user_id"] == raw_user].sort_values("rank")
        np.testing.assert_allclose(rows["score"].to_numpy(), expected, rtol=1e-6)
        assert not set(rows["item_id"]) & set(item_ids[seen])  # history masked
        recs = model.recommend_raw(raw_user, k=10)
        assert [r.item_id for r in recs] == rows["item_id"].tolist()
        assert [r.rank for r in recs] == list(range(1, 11))


def test_new_user_history_scores_like_a_known_user(ease_run: Path, ml100k: Dataset) -> None:
    model = load_run(ease_run)
    user = 195
    seen = ml100k.interactions.loc[ml100k.interactions["user"] == user, "item"].to_numpy()
    raw_items = ml100k.items["item_id"].to_numpy()[seen].tolist()
    raw_user = ml100k.users["user_id"].iloc[user]
    assert model.recommend_raw(history=raw_items, k=5) == model.recommend_raw(raw_user, k=5)
    with pytest.raises(Exception, match="not in this model's catalogue"):
        model.recommend_raw(history=["no-such-item"])


def test_recommend_and_export_commands(ease_run: Path, tmp_path: Path) -> None:
    shown = _cli("recommend", "--run", str(ease_run), "--user", "196", "-k", "3")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.strip().splitlines()
    assert len(lines) == 5 and lines[2].split()[0] == "1"  # header, column names, 3 rows
    unknown = _cli("recommend", "--run", str(ease_run), "--user", "nobody")
    assert unknown.returncode == 2 and "user 'nobody' is not in" in unknown.stderr
    out = tmp_path / "all.parquet"
    done = _cli("export", "--run", str(ease_run), "-k", "5", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert len(pd.read_parquet(out)) == 5 * 943 and "users/s" in done.stdout


def test_help_lists_everything_without_importing_torch() -> None:
    code = (
        "import sys; from recfuse import cli; app = cli.build_app(['--help']); "
        "import typer.main; names = list(typer.main.get_command(app).commands); "
        "print(','.join(names)); assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("run", "recommend", "export", "models", "tune", "eval", "study"):
        assert name in done.stdout.split(",")
    version = subprocess.run(
        [sys.executable, "-m", "recfuse.cli", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.startswith("recfuse ")


def test_models_lists_parameters_and_defaults() -> None:
    done = _cli("models")
    assert done.returncode == 0, done.stderr
    assert "model.params.l2 = 500.0" in done.stdout
    assert "model.params.blocks = 2" in done.stdout and "train.patience = 5" in done.stdout
