"""The web page in a real browser (the system Chromium driven by Playwright): log in with the first-start URL, type
a query, see thumbnails, open one, "find similar", select results and download the evidence zip."""
from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _browser(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-extensions", "--no-first-run"])


def _wait(page, condition: str, timeout: float = 30.0) -> None:
    """Poll a JS condition with page.evaluate (page.wait_for_function would need 'unsafe-eval', which the page's
    Content-Security-Policy rightly forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({condition})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def playwright():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install "
                                                                 "playwright; it drives the system chromium)")
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium: install the Debian package (apt-get install -y chromium); .ci/run does")
    with sync_api.sync_playwright() as p:
        yield p


def test_search_open_similar_export_in_a_real_browser(playwright, server, tmp_path):
    browser = _browser(playwright)
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(f"{server.url}/?token={server.tokens['operator']}")  # the Jupyter-style login URL
        page.wait_for_selector("#q", state="visible", timeout=30_000)
        assert page.url == f"{server.url}/"  # the token left the address bar
        assert "op · operator" in page.inner_text("#who")
        assert page.locator(".chip").count() == 6

        page.fill("#q", "man in red jacket walking")
        page.press("#q", "Enter")
        _wait(page, "document.querySelectorAll('#grid .card img').length >= 5")
        _wait(page, "[...document.querySelectorAll('#grid .card img')].slice(0, 5)"
                    ".every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator("#grid .card").count() >= 5
        first_key = page.locator("#grid .card").first.get_attribute("data-key")
        page.screenshot(path=str(tmp_path / "serve-results.png"))

        page.locator("#grid .card img").first.click()
        page.wait_for_selector("#detail[open]", timeout=10_000)
        assert page.inner_text("#d-key") == first_key
        assert page.inner_text("#d-camera").startswith("C")
        _wait(page, "document.getElementById('player').naturalWidth > 0")
        page.click("#similar")
        _wait(page, f"document.getElementById('status').textContent.includes('like {first_key}')")
        similar_keys = page.eval_on_selector_all("#grid .card", "cards => cards.map(c => c.dataset.key)")
        assert len(similar_keys) >= 5 and first_key not in similar_keys

        boxes = page.locator("#grid .card input[type=checkbox]")
        boxes.nth(0).check()
        boxes.nth(1).check()
        assert page.inner_text("#selcount") == "2 selected"
        with page.expect_download(timeout=30_000) as info:
            page.click("#export")
        zip_path = tmp_path / "evidence.zip"
        info.value.save_as(zip_path)
        with zipfile.ZipFile(io.BytesIO(zip_path.read_bytes())) as zf:
            manifest = json.loads(zf.read("manifest.json"))
        assert [t["key"] for t in manifest["tracklets"]] == similar_keys[:2]
        assert manifest["query"]["like"] == first_key and manifest["who"]["token"] == "op"
        assert manifest["files"] and manifest["model_id"]

        page.screenshot(path=str(tmp_path / "serve-similar.png"))
        assert not errors, errors
        print(f"screenshots: {tmp_path / 'serve-results.png'}, {tmp_path / 'serve-similar.png'}")
    finally:
        browser.close()
