"""Shared test setup: one thread per library (the CI machine has 2 cores) and a private cache."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Caches (features, LLM outputs, dense model copies) go to one folder per test session."""
    if "RECFUSE_CACHE" not in os.environ:
        os.environ["RECFUSE_CACHE"] = str(tmp_path_factory.mktemp("recfuse-cache"))


CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def open_in_browser() -> object:
    """``open_in_browser(url, screenshot)``: load a page in headless Chromium (Debian's, via
    Playwright) and return its title, table texts, image sizes and console errors."""
    from pathlib import Path

    def run(url: str, screenshot: Path) -> dict[str, object]:
        from playwright.sync_api import sync_playwright

        if not Path(CHROMIUM).exists():
            pytest.fail("Chromium is missing: `make test` installs the Debian package chromium")
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="load")
            info = {
                "title": page.title(),
                "tables": page.evaluate(
                    "[...document.querySelectorAll('table')].map(t => t.innerText)"
                ),
                "images": page.evaluate(
                    "[...document.images].map(i => [i.naturalWidth, i.naturalHeight, i.complete])"
                ),
                "errors": errors,
            }
            page.screenshot(path=str(screenshot), full_page=True)
            browser.close()
        return info

    return run
