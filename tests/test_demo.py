"""The README's first command, run as a user runs it: `python -m mailforce.tools.demo` (what
scripts/demo.sh executes) starts the embedded engine, loads the sample mail, runs the DAG through
`airflow dags test` and prints what was written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_INDICES = (
    "search-message-roles",
    "search-accounts-engagements",
    "search-accounts_statistics_simple",
    "search-domains-engagements",
    "search-relationships",
    "search-contacts",
    "search-engagement-timeline",
    "search-runtime-stats",
)
SAMPLE_ACCOUNTS = ("kunai-ann", "kunai-jim", "kunai-ken", "kunai-raj", "kunai-sara")
DEMO_TIMEOUT_SECONDS = 240  # the demo takes ~15 s; the bound only stops a hang


def run_demo(*arguments: str) -> tuple[subprocess.CompletedProcess[str], float]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("MAILFORCE_")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "plugins"), environment.get("PYTHONPATH")]))
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mailforce.tools.demo", *arguments],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=DEMO_TIMEOUT_SECONDS,
    )
    return result, time.monotonic() - began


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"


def test_demo_runs_the_dag_through_airflow_and_reports_every_output_index(tmp_path):
    home = tmp_path / "airflow-demo"
    result, seconds = run_demo("--home", str(home))

    assert result.returncode == 0, describe(result)
    output = result.stdout
    counts = {index: int(count) for index, count in re.findall(r"^  (search-\S+)\s+(\d+) documents$", output, re.M)}
    assert set(counts) == set(OUTPUT_INDICES), describe(result)
    assert all(count > 0 for count in counts.values()), counts
    assert counts["search-accounts_statistics_simple"] == len(SAMPLE_ACCOUNTS)
    assert counts["search-runtime-stats"] == 1

    assert "Accounts (5)" in output
    for account in SAMPLE_ACCOUNTS:
        assert re.search(rf"^  {account}\s+\d+\s+\d+\s+\d+\s+\d+$", output, re.M), account
    top_domains = output.split("Top 10 domains by total_emails")[1].split("\n\n")[0].splitlines()[2:]
    assert len(top_domains) == 10
    emails = [int(line.split()[1]) for line in top_domains]
    assert emails == sorted(emails, reverse=True)
    assert re.search(r"^  messages  \d+ of 5 accounts", output, re.M)

    # The sample's own company is internal: never an outside domain.
    assert "Settings  MAILFORCE_INTERNAL_DOMAINS=kunaico.com" in output
    assert not any(line.split()[0] == "kunaico.com" for line in top_domains), top_domains
    assert "Run summary (XCom run_summary of publish_stats): Window (the beginning, " in output
    # Several partitions: a new user sees mapping at work.
    labels = re.findall(r"^  success  compile_domain_partition \[(\d+)/(\d+) ", output, re.M)
    assert labels, "mapped tasks are labelled"
    assert int(labels[0][1]) >= 2 and len(labels) == int(labels[0][1]), labels
    assert (home / "dags-test.log").stat().st_size > 0
    # Only the report: the client's request lines stay in the log (importing airflow installs an
    # INFO handler on the root logger; the demo replaces it).
    noise = [line for line in (output + result.stderr).splitlines() if "elastic_transport" in line or "[info" in line]
    assert not noise, noise[:5]
    assert seconds < 120, f"the demo took {seconds:.0f} s"


def test_demo_exits_non_zero_with_the_task_error_when_the_run_fails(tmp_path):
    result, _ = run_demo("--home", str(tmp_path / "airflow-demo"), "--conf", '{"no_such_param": 1}')

    assert result.returncode == 1, describe(result)
    assert "demo failed: the DAG run failed: task fetch_watermark" in result.stderr
    assert "no_such_param" in result.stderr
    assert "Output indices" not in result.stdout
