"""Downloads are SHA-256-checked and atomic; k-core filtering and statistics."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from recfuse.data import k_core, load_dataset
from recfuse.data.locate import RemoteFile, locate
from recfuse.errors import DataError


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def test_download_verifies_checksum_and_is_atomic(
    file_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = file_server
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path / "cache"))
    (root / "good.txt").write_bytes(b"hello recfuse\n")
    good = RemoteFile("good.txt", f"{url}/good.txt", hashlib.sha256(b"hello recfuse\n").hexdigest())
    folder = locate("downloaded-ds", (good,), data_dir=tmp_path / "nowhere")
    assert (folder / "good.txt").read_bytes() == b"hello recfuse\n"
    assert folder == tmp_path / "cache" / "data" / "downloaded-ds"

    (root / "bad.txt").write_bytes(b"tampered\n")
    bad = RemoteFile("bad.txt", f"{url}/bad.txt", "0" * 64)
    with pytest.raises(DataError, match="SHA-256 .* does not match"):
        locate("tampered-ds", (bad,), data_dir=tmp_path / "nowhere")
    target = tmp_path / "cache" / "data" / "tampered-ds"
    assert not target.exists() or not any(target.iterdir())  # nothing half-written left behind


def test_unreachable_download_says_where_to_put_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path / "cache"))
    remote = RemoteFile("x.txt", "http://127.0.0.1:9/x.txt", "0" * 64)
    with pytest.raises(DataError, match=r"download failed .* put x\.txt into"):
        locate("unreachable-ds", (remote,), data_dir=tmp_path / "here")


def test_k_core_filters_until_stable() -> None:
    ds = k_core(load_dataset("ml-100k"), 20, 20)
    inter = ds.interactions
    assert inter.groupby("user").size().min() >= 20
    assert inter.groupby("item").size().min() >= 20
    assert ds.n_items == inter["item"].nunique() < 1_682
    assert inter["item"].max() == ds.n_items - 1
    stats = ds.stats()
    assert stats["interactions"] == len(inter) and 0 < stats["density"] < 1
