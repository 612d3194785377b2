"""The explorer in a real browser: run an estimate, share it as a link, switch pages, download a CSV."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import SCREENSHOTS

pytestmark = pytest.mark.e2e

#: the longest a page may take to render: a cold first run imports and compiles every Numba kernel (no cache
#: in a fresh checkout) and the accuracy page predicts every reference row; about a minute here, several on a
#: loaded CI runner. The waits guard against a hang; they do not time the app (benchmarks/ does)
COLD_START_MS = 300_000
# (link text, url path, text that appears once the page has finished rendering)
PAGES = (("Compare", "compare", "Download CSV"), ("Sweep & Pareto", "sweep", "Run sweep"),
         ("Serving & cost", "finance", "Download cost CSV"), ("Video", "video", "Download CSV"),
         ("Specs", "specs", "Download YAML"), ("Accuracy", "accuracy", "Download summary CSV|Not available yet"))


def _metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def _settle(page) -> None:
    """Wait until Streamlit has finished the current run (no 'running' status widget)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)


def test_estimate_runs_downloads_and_every_page_renders(app_url, page):
    page.goto(app_url)
    page.get_by_role("heading", name="Estimate").wait_for(timeout=COLD_START_MS)
    page.locator('[data-testid="stMetric"]').filter(has_text="Throughput").wait_for(timeout=COLD_START_MS)
    _settle(page)
    before = _metric(page, "Throughput")
    batch = page.get_by_role("spinbutton", name="Batch", exact=True)
    batch.fill("8")
    page.get_by_role("button", name="Estimate").click()
    page.wait_for_function(
        "(b) => [...document.querySelectorAll('[data-testid=\"stMetric\"]')].some("
        "m => m.innerText.includes('Throughput') && !m.innerText.includes(b))", arg=before, timeout=30_000)
    _settle(page)
    assert "batch=8" in page.url  # the scenario is in the link
    page.screenshot(path=str(SCREENSHOTS / "estimate.png"), full_page=True)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download metrics CSV").click()
    text = Path(dl.value.path()).read_text(encoding="utf-8")
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["hardware"] == "h100-sxm" and row["batch"] == "8"
    assert float(row["throughput_tokens_per_s"]) > 0
    for title, slug, done in PAGES:
        page.get_by_role("link", name=title).click()
        page.wait_for_url(f"**/{slug}**")
        page.get_by_text(re.compile(done)).first.wait_for(timeout=COLD_START_MS)
        _settle(page)
        assert page.locator('[data-testid="stException"]').count() == 0, title
        page.screenshot(path=str(SCREENSHOTS / f"{slug}.png"), full_page=True)


def test_shared_link_restores_the_scenario(app_url, page):
    page.goto(f"{app_url}/estimate?batch=4&phase=prefill&input_len=512")
    page.locator('[data-testid="stMetric"]').filter(has_text="Batch").wait_for(timeout=COLD_START_MS)
    _settle(page)
    assert _metric(page, "Batch") == "4"
    assert page.get_by_role("spinbutton", name="Input tokens").input_value() == "512"
