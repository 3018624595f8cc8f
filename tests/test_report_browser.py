"""The report in a real browser: headless Chromium (Debian's chromium-headless-shell) via Playwright.

Every chart must render with its data, with no console error and no network request (the file
opens offline). A screenshot is saved; set REPORT_SCREENSHOT=/some/path.png to keep a copy.

The browser comes from the operating system, never from `playwright install`: `.ci/run` installs the
Debian package when it is missing. Without it the test fails in CI (CI=true) and is skipped elsewhere.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from test_report import index_sample, write

BROWSER_CANDIDATES = (
    "/usr/lib/chromium/chromium-headless-shell",  # the binary itself (/usr/bin/... is a shell wrapper)
    "/usr/bin/chromium-headless-shell",
    "/usr/lib/chromium/chromium",
    "/usr/bin/chromium",
)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
CHARTS = ("companies", "companies-best-connected", "domains", "contacts", "timeline", "best-connected", "strength",
          "automated", "runs", "cooling", "people")


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI must have it: .ci/run installs chromium-headless-shell with apt-get)", pytrace=False)
    pytest.skip(message)


def browser_path() -> str:
    configured = os.environ.get("CHROMIUM_PATH")
    for candidate in ([configured] if configured else []) + list(BROWSER_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if not found:
        _unavailable("no headless Chromium: apt-get install chromium-headless-shell (or set CHROMIUM_PATH)")
    return found  # type: ignore[return-value]


@pytest.fixture
def chromium():
    executable = browser_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:  # pragma: no cover - pinned in requirements.txt
        _unavailable(f"playwright is not installed: {error}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


# Per chart: plotly's graph div holds the data it drew; the SVG (or the heatmap's image) shows it.
RENDERED = """
(key) => {
  const chart = document.getElementById('chart-' + key);
  if (!chart) return null;
  return {
    container: chart.querySelectorAll('.plot-container').length,
    traces: (chart.data || []).length,
    points: (chart.data || []).reduce((n, t) => n + ((t.y || t.values || []).length), 0),
    bars: chart.querySelectorAll('.barlayer .point path').length,
    lines: chart.querySelectorAll('.scatterlayer .trace .js-line').length,
    slices: chart.querySelectorAll('.pielayer .slice path').length,
    heatmap: chart.querySelectorAll('.heatmaplayer image').length,
    svgTraces: chart.querySelectorAll('svg .trace, svg .hm').length,
    width: chart.getBoundingClientRect().width,
    height: chart.getBoundingClientRect().height,
  };
}
"""


def test_every_chart_renders_in_headless_chromium(es, settings, tmp_path, monkeypatch, chromium):
    index_sample(es, settings)
    path, _ = write(es, settings, tmp_path, monkeypatch)

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length === {len(CHARTS)}", timeout=20_000)

    rendered = {key: page.evaluate(RENDERED, key) for key in CHARTS}
    for key, facts in rendered.items():
        assert facts is not None, f"chart-{key} missing"
        assert facts["container"] == 1 and facts["traces"] >= 1 and facts["points"] >= 1, (key, facts)
        # the change feed's cooling chart is drawn short on the sample (one account): its height is its own
        assert facts["svgTraces"] >= 1 and facts["width"] > 300 and (key == "cooling" or facts["height"] > 200), (key, facts)
    assert rendered["domains"]["bars"] == 3
    assert rendered["contacts"]["bars"] == 3
    assert rendered["timeline"]["lines"] == 2
    assert rendered["best-connected"]["heatmap"] == 1
    assert rendered["strength"]["bars"] >= 6  # the non-empty bins
    assert rendered["automated"]["slices"] == 4
    assert rendered["runs"]["bars"] == 3 and rendered["runs"]["lines"] == 1
    assert rendered["cooling"]["bars"] >= 3  # to warm, to cooling, to cold
    assert rendered["people"]["bars"] == 2  # the two people with several addresses
    assert page.locator(".no-data").count() == 0

    assert not problems, problems
    assert [url for url in requests if not url.startswith(("file:", "data:", "blob:"))] == [], "the report must open offline"

    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 20_000
    if os.environ.get("REPORT_SCREENSHOT"):
        Path(os.environ["REPORT_SCREENSHOT"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, os.environ["REPORT_SCREENSHOT"])
    print(f"screenshot: {screenshot}")


def test_the_empty_report_renders_its_no_data_panels(es, settings, tmp_path, monkeypatch, chromium):
    path, _ = write(es, settings, tmp_path, monkeypatch)
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(path.as_uri(), wait_until="load")
    assert page.locator(".no-data").count() == len(CHARTS)
    assert all(page.locator(f"#panel-{key} .no-data").is_visible() for key in CHARTS)
    assert not problems, problems
