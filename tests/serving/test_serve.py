"""`recfuse serve`: a real server on 127.0.0.1 over real runs, every request gated and logged."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from recfuse.models.base import all_histories
from recfuse.runs import load_config, run_config
from recfuse.runs.load import load_run


def _train(out: Path, model: str, params: str, epochs: int = 1) -> Path:
    config = load_config(
        overrides=[
            f"name={model}-serve",
            "data.name=ml-100k",
            f"model.name={model}",
            f"model.params={params}",
            f"train={{epochs: {epochs}, batch_size: 256}}",
            "eval.ks=[10]",
            f"output={out}",
            "threads=1",
        ]
    )
    return run_config(config)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("serve-runs")
    return {
        "ease": _train(out, "ease", "{l2: 500.0}"),
        "sasrec": _train(out, "sasrec", "{dim: 16, max_len: 20, blocks: 1}"),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`recfuse serve` in a subprocess; `stop` sends SIGTERM and returns the seconds it took."""

    def __init__(self, run: Path, *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "recfuse.cli", "serve", "--run", str(run)]
        cmd += ["--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.proc.kill()
        raise AssertionError("server did not start in 120 s")

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **kw)

    def stop(self) -> float:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        return time.monotonic() - started


@pytest.fixture(scope="module")
def ease(runs: dict[str, Path]) -> Iterator[Server]:
    server = Server(runs["ease"])
    yield server
    if server.proc.poll() is None:
        server.stop()


def _ledger_entries(ledger: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "recfuse.cli", "ledger", "verify", str(ledger)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    from recfuse.governance.ledger import Ledger

    with Ledger(ledger) as led:
        return sum(1 for e in led.entries() if e.get("action") in ("recommend", "explain"))


def test_recommend_matches_the_model_and_never_returns_history(
    ease: Server, runs: dict[str, Path]
) -> None:
    model = load_run(runs["ease"])
    histories = all_histories(model.split_)
    for user in ("196", "1", "943"):
        body = ease.get("/recommend", params={"user": user, "k": 10}).json()
        served = [i["item_id"] for i in body["items"]]
        expected = [str(r.item_id) for r in model.recommend_raw(user, k=10)]
        assert served == expected
        seen = {str(model.ids_.item_ids[i]) for i in histories[model.ids_.user_index(user)]}
        assert not seen & set(served)
        assert body["ledger_entry"] is not None


def test_new_user_history_and_items(ease: Server) -> None:
    body = ease.post("/recommend", json={"history": ["50", "181", "172"], "k": 5}).json()
    assert len(body["items"]) == 5 and not {"50", "181", "172"} & {
        i["item_id"] for i in body["items"]
    }
    item = ease.get("/items/50").json()
    assert item["title"].startswith("Star Wars") and item["train_interactions"] > 300


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "message"),
    [
        ("get", "/recommend", {"params": {"user": "no-such-user"}}, 404, "not in this model"),
        ("get", "/recommend", {"params": {"user": "196", "k": 101}}, 400, "over the limit"),
        ("get", "/recommend", {"params": {"user": "196", "k": 0}}, 400, "k"),
        ("get", "/recommend", {"params": {}}, 400, "user"),
        ("post", "/recommend", {"content": b"{not json"}, 400, "JSON"),
        ("post", "/recommend", {"json": {"history": []}}, 400, "history"),
        ("post", "/recommend", {"json": {"history": ["50"], "extra": 1}}, 400, "extra"),
        ("post", "/recommend", {"json": {"history": ["no-such-item"]}}, 400, "no-such-item"),
        ("post", "/recommend", {"json": {"history": ["50"] * 2001}}, 400, "over the limit"),
        ("post", "/recommend", {"content": b"x" * 70_000}, 413, "over 65536 bytes"),
        ("get", "/items/no-such-item", {}, 404, "no-such-item"),
        ("get", "/explain", {"params": {"user": "196", "item": "nope"}}, 404, "nope"),
        (
            "get",
            "/recommend",
            {"params": {"user": "196"}, "headers": {"X-Client-Id": "a b"}},
            400,
            "X-Client-Id",
        ),
    ],
)
def test_bad_requests_are_4xx_with_a_message(
    ease: Server, method: str, path: str, kwargs: dict[str, Any], status: int, message: str
) -> None:
    response = getattr(ease, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert message.lower() in response.json()["detail"].lower()


def test_explain_ease_contributions_are_its_neighbour_weights(
    ease: Server, runs: dict[str, Path]
) -> None:
    model = load_run(runs["ease"])
    user = "1"  # a user whose whole history fits the explanation window
    top = ease.get("/recommend", params={"user": user, "k": 1}).json()["items"][0]
    body = ease.get("/explain", params={"user": user, "item": top["item_id"]}).json()
    assert body["rank"] == 1 and body["method"].startswith("leave-one-out")
    item = model.ids_.item_indices([top["item_id"]])[0]
    best = body["contributions"][0]
    j = model.ids_.item_indices([best["item_id"]])[0]
    assert best["weight"] == pytest.approx(float(model.b_[j, item]), abs=1e-4)
    assert best["weight"] == pytest.approx(max(c["weight"] for c in body["contributions"]))


@pytest.mark.slow
def test_sasrec_history_explain_report_and_ledger(
    runs: dict[str, Path], tmp_path: Path, open_in_browser: Any
) -> None:
    ledger = tmp_path / "ledger.db"
    server = Server(runs["sasrec"], "--ledger", str(ledger))
    try:
        body = server.post("/recommend", json={"history": ["50", "181"], "k": 10}).json()
        assert len(body["items"]) == 10 and not {"50", "181"} & {
            i["item_id"] for i in body["items"]
        }
        explained = server.get(
            "/explain", params={"user": "196", "item": body["items"][0]["item_id"]}
        )
        assert explained.status_code == 200 and explained.json()["contributions"]
        assert server.get("/report").status_code == 200
        info = open_in_browser(f"{server.url}/report", tmp_path / "report.png")
        assert str(info["title"]).startswith("recfuse run") and info["errors"] == []
        assert info["images"] and all(w > 0 for w, _, _ in info["images"])  # type: ignore[attr-defined]
    finally:
        seconds = server.stop()
    assert seconds < 2.0  # SIGTERM ends the server within 2 s
    assert _ledger_entries(ledger) == 2


def test_policy_blocks_items_and_limits_rate(runs: dict[str, Path], tmp_path: Path) -> None:
    model = load_run(runs["ease"])
    blocked = [str(r.item_id) for r in model.recommend_raw("196", k=3)]
    policy = tmp_path / "policy"
    policy.mkdir()
    shipped = Path(__file__).parents[2] / "src/recfuse/serving/policies"
    (policy / "serving.cedarschema").write_text((shipped / "serving.cedarschema").read_text())
    text = (shipped / "serving.cedar").read_text().replace("> 6000", "> 3")
    items = ", ".join(f'Item::"{i}"' for i in blocked)
    text += f'\n@id("blocked")\nforbid (principal, action == Action::"return_item", resource)\nwhen {{ resource in [{items}] }};\n'
    (policy / "serving.cedar").write_text(text)
    ledger = tmp_path / "ledger.db"
    server = Server(runs["ease"], "--policy", str(policy), "--ledger", str(ledger))
    try:
        served = server.get("/recommend", params={"user": "196", "k": 10}).json()["items"]
        assert len(served) == 10 and not set(blocked) & {i["item_id"] for i in served}
        statuses = [server.get("/recommend", params={"user": "196"}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]  # the 4th request from this client in a minute
        other = server.get("/recommend", params={"user": "196"}, headers={"X-Client-Id": "other"})
        assert other.status_code == 200
    finally:
        server.stop()
    from recfuse.governance.ledger import Ledger

    with Ledger(ledger) as led:
        decisions = [e["decision"] for e in led.entries() if e.get("action") == "recommend"]
    assert decisions == ["allow", "allow", "allow", "deny", "allow"]


def test_gate_off_writes_no_ledger(runs: dict[str, Path], tmp_path: Path) -> None:
    ledger = tmp_path / "none.db"
    server = Server(runs["ease"], "--no-gate", "--ledger", str(ledger))
    try:
        body = server.get("/recommend", params={"user": "196"}).json()
        assert body["ledger_entry"] is None and len(body["items"]) == 10
    finally:
        server.stop()
    assert not ledger.exists()
