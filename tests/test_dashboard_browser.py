"""Real-browser test of the dashboard: a headless Chromium (Debian package) driven by Playwright loads every page
of a live ``streamlit run dashboards/app.py``, changes an input, checks the headline updates and saves screenshots.
Screenshots go to a temporary folder; ``UPDATE_SCREENSHOTS=1`` writes them to docs/screenshots/ (the tracked
images) instead. Skipped when chromium or playwright is not installed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DOC_SHOTS = ROOT / "docs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = ("training", "compare", "sensitivity", "scaling", "serving", "calibration")

if not (Path(CHROMIUM).is_file() or shutil.which("chromium")):
    pytest.skip(f"chromium not installed at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "app.py"), "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: docs/screenshots/ only when UPDATE_SCREENSHOTS=1, else a temporary folder."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        return DOC_SHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def page():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1600, "height": 2600})
        yield pg
        browser.close()


def _metric(pg, label: str) -> str:
    m = pg.locator('[data-testid="stMetric"]', has_text=label).first
    return m.locator('[data-testid="stMetricValue"]').inner_text()


def _settle(pg) -> None:
    pg.wait_for_timeout(300)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30000)
    pg.wait_for_timeout(500)


def _no_exception(pg) -> None:
    assert pg.locator('[data-testid="stException"]').count() == 0


def test_training_page_updates_and_screenshots(server, page, shots):
    page.goto(f"{server}/?page=training")
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60000)
    _settle(page)
    before = _metric(page, "GPU-hours")
    box = page.get_by_label("Training tokens")
    box.fill("8e12")
    box.press("Enter")
    page.wait_for_function(
        "(b) => [...document.querySelectorAll('[data-testid=\"stMetric\"]')].some(m => m.innerText.includes("
        "'GPU-hours') && !m.innerText.includes(b))", arg=before, timeout=30000)
    _settle(page)
    after = _metric(page, "GPU-hours")
    assert after != before
    assert "t_tokens=8e12" in page.url  # the scenario is in the link
    _no_exception(page)
    page.screenshot(path=str(shots / "training.png"), full_page=True)
    assert (shots / "training.png").stat().st_size > 0


@pytest.mark.parametrize("name", [p for p in PAGES if p != "training"])
def test_each_page_loads(server, page, shots, name):
    page.goto(f"{server}/?page={name}")
    page.wait_for_selector('[data-testid="stHeading"]', timeout=60000)
    _settle(page)
    _no_exception(page)
    if name == "compare":
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=30000)
        box = page.get_by_label("GPU type").nth(1)
        box.click()
        page.get_by_role("option", name="h200", exact=True).click()
        page.wait_for_function("() => location.href.includes('c1_gpu=h200')", timeout=30000)
        _settle(page)
        _no_exception(page)
    if name in ("compare", "sensitivity", "scaling", "serving"):
        page.wait_for_selector(".js-plotly-plot", timeout=30000)
        page.wait_for_timeout(800)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def _caption_with(pg, text: str) -> str:
    return pg.locator('[data-testid="stCaptionContainer"]', has_text=text).first.inner_text()


def test_serving_region_typed_name_selects_the_labelled_region(server, page):
    page.goto(f"{server}/?page=serving")
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60000)
    _settle(page)
    box = page.get_by_label("Region (grid carbon intensity)")
    box.click()
    box.fill("Germany")
    page.get_by_role("option", name="DEU — Germany", exact=False).first.click()
    page.wait_for_function("() => location.href.includes('sv_region=DEU')", timeout=30000)
    _settle(page)
    assert "Germany" in _caption_with(page, "Grid intensity used")
    _no_exception(page)
