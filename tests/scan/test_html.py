"""The HTML report in a real browser: headless Debian Chromium driven by Playwright.

Checks that the page is self-contained (no request but the file itself), that attacker-controlled
strings render as inert text (no script, no dialog, no hidden characters), and saves a screenshot
to tests/scan/artifacts/ for a person to look at. Skips only when Chromium or Playwright is missing
outside CI; in CI (CI set) their absence is a failure.
"""

from __future__ import annotations

import html as html_module
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from mcpwarden.scan.html import render_html
from tests.scan.test_reports import sample_report

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _browser_or_skip() -> Any:
    reason = None
    if not CHROMIUM.exists():
        reason = "Debian chromium is not installed (apt-get install -y chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = reason or "playwright is not installed (pip install playwright)"
        sync_playwright = None
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    return sync_playwright


def test_report_is_self_contained_and_escapes_everything(tmp_path: Path) -> None:
    document = render_html(sample_report(tmp_path / "c.json"))
    # Static guarantees, before any browser: no scripts, no external references, no raw controls.
    assert "<script" not in document.replace(html_module.escape("<script>"), "")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", document)
    assert "\x1b" not in document and "\u200b" not in document and "\U000e0072" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "Content-Security-Policy" in document


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    sync_playwright = _browser_or_skip()
    report = sample_report(tmp_path / "c.json")
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(report), encoding="utf-8")
    requests: list[str] = []
    dialogs: list[str] = []
    console_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.on(
                "console",
                lambda message: console_errors.append(message.text) if message.type == "error" else None,
            )
            page.goto(page_file.as_uri(), wait_until="load", timeout=30_000)
            rows = page.locator("section.server tbody tr")
            assert rows.count() == sum(len(server.findings) for server in report.servers)
            assert page.locator("section.server").count() == len(report.servers)
            assert page.locator("script").count() == 0
            body_text = page.inner_text("body")
            # The hostile string is displayed, as text, with its hidden parts made visible.
            assert "<script>alert(1)</script>" in body_text
            assert "<ESC>" in body_text and "<U+200B>" in body_text
            assert "\u200b" not in body_text
            badge = page.locator(".badge.critical").first
            assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(139, 0, 0)"
            assert page.title() == "mcpwarden scan report"
            ARTIFACTS.mkdir(exist_ok=True)
            screenshot = ARTIFACTS / "scan-report.png"
            page.screenshot(path=str(screenshot), full_page=True)
            shutil.copy(screenshot, tmp_path / "scan-report.png")
            assert screenshot.stat().st_size > 10_000
        finally:
            browser.close()
    assert requests == [page_file.as_uri()], requests  # nothing fetched but the file itself
    assert dialogs == []
    assert console_errors == []
