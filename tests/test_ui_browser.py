"""The Airflow UI of `scripts/ui.sh` in a real browser (headless Chromium via Playwright), as a new
user meets it: log in, open the trigger form and see the params by their titles, trigger a run from
the form with a mistyped excluded account, see the mapped partitions' labels and the run summary
(the `run_summary` XCom of `publish_stats`, with the unknown-account warning). Screenshots go to
the test's tmp dir (or UI_SCREENSHOT_DIR) and their paths are printed.

The browser comes from the operating system, as for tests/test_report_browser.py (CI=true: missing
means failure). The stack is the session's (tests/ui_stack.py, shared with tests/test_ui_rest.py),
stopped with nothing left running when the session ends. About 60 s on two cores with the stack's
start; deselect with ``-m "not slow"``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from mailforce import DAG_ID
from test_report_browser import CHROMIUM_FLAGS, browser_path
from ui_stack import log_tail, wait_for_run

PARAM_TITLES = ("From date", "To date", "Backfilled accounts", "Excluded accounts")
EXCLUDED = ("kunai-raj", "kunai-nobody")  # the second is not in the sample: a warning, not a failure
UI_TIMEOUT_MS = 30_000


def shoot(page, directory: Path, name: str, shots: list[Path]) -> None:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shots.append(path)


@pytest.mark.slow
def test_a_new_user_triggers_a_run_in_the_browser_and_sees_labels_and_summary(tmp_path, request):
    executable = browser_path()  # skips (or fails in CI) before anything starts
    from playwright.sync_api import sync_playwright

    shots_dir = Path(os.environ.get("UI_SCREENSHOT_DIR") or tmp_path / "screenshots")
    shots_dir.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    ui = request.getfixturevalue("ui_stack")  # the session's stack, started on first use
    url, password, api = ui.url, ui.password, ui.api()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(UI_TIMEOUT_MS)
                page.goto(url)
                page.locator("input[name=username]").wait_for()  # the UI sends a new visitor to log in
                assert "/auth/login" in page.url
                page.locator("input[name=username]").fill("admin")
                page.locator("input[name=password]").fill(password)
                page.locator("button[type=submit]").click()
                page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))

                # The trigger form: every param by its title and description.
                page.goto(f"{url}/dags/{DAG_ID}", wait_until="networkidle")
                page.get_by_role("button", name="Trigger").first.click()
                dialog = page.get_by_role("dialog")
                dialog.get_by_text("Run Parameters").wait_for()
                form = dialog.inner_text()
                for title in PARAM_TITLES:
                    assert title in form, form
                assert "e.g. 2001-05-14T00:00:00Z" in form and "e.g. kunai-jim" in form
                shoot(page, shots_dir, "1-trigger-form", shots)

                # Trigger from the form, one mistyped account among the excluded.
                earlier = {run["dag_run_id"] for run in api.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]}
                dialog.locator("textarea").nth(1).fill("\n".join(EXCLUDED))
                dialog.get_by_role("button", name="Trigger").click()
                deadline = time.monotonic() + 30
                runs: list[dict] = []
                while not runs and time.monotonic() < deadline:
                    runs = [run for run in api.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]
                            if (run.get("conf") or {}).get("exclude_accounts") and run["dag_run_id"] not in earlier]
                    time.sleep(1)
                assert len(runs) == 1, runs
                run_id = runs[0]["dag_run_id"]
                assert sorted(runs[0]["conf"]["exclude_accounts"]) == sorted(EXCLUDED)
                run = wait_for_run(api, run_id, ui.home)
                assert run["state"] == "success", f"run {run_id} {run['state']}\n{log_tail(ui.home)}"

                # The mapped partitions, by their labels.
                page.goto(f"{url}/dags/{DAG_ID}/runs/{run_id}/tasks/compile_domain_partition/mapped",
                          wait_until="networkidle")
                label = re.compile(r"^(\d+)/(\d+) \S+.*\(\d+% of work\)$")
                page.get_by_text(label).first.wait_for()
                texts = sorted(set(text.strip() for text in page.get_by_text(label).all_inner_texts()))
                labels = [label.match(text).groups() for text in texts]
                assert len(labels) >= 2 and {total for _, total in labels} == {str(len(labels))}, labels
                shoot(page, shots_dir, "2-mapped-partitions", shots)

                # The run summary: one XCom entry, one line, with the warning.
                page.goto(f"{url}/dags/{DAG_ID}/runs/{run_id}/tasks/publish_stats/xcom", wait_until="networkidle")
                page.get_by_text("run_summary").first.wait_for()
                page.get_by_text(re.compile(r"^\"?Window \(the beginning, ")).first.wait_for()
                body = page.locator("body").inner_text()
                summary = next(line for line in body.splitlines() if "Window (the beginning, " in line)
                assert "messages of 4 accounts (excluded: kunai-nobody, kunai-raj)" in summary, summary
                assert "partitions" in summary and "documents written" in summary and "including retries" in summary
                assert "WARNING unknown accounts (exclude_accounts kunai-nobody)" in summary, summary
                shoot(page, shots_dir, "3-run-summary", shots)
            finally:
                browser.close()
    finally:
        print("screenshots:", *map(str, shots))
