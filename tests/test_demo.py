"""The README's quick-start demo commands, run as a user runs them, from the clone's root (CI runs this
file on a fresh clone through .ci/run): `bash scripts/demo.sh` starts the embedded engine, loads the
sample mail, runs the DAG through `airflow dags test` and prints what was written; `bash scripts/demo.sh
--mail ~/export.mbox` does it on an export without X-Origin headers."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
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
    "search-relationship-changes",
    "search-organizations",
    "search-people",
)
SAMPLE_ACCOUNTS = ("kunai-ann", "kunai-jim", "kunai-ken", "kunai-raj", "kunai-sara")
DEMO_TIMEOUT_SECONDS = 240  # the demo takes ~15 s; the bound only stops a hang
SAMPLE_LAST_DAY = date(2025, 12, 31)  # the sample's latest message as written (scripts/make_sample_mail.py)


def readme_command(command: str) -> str:
    """``command`` exactly as a line of the README's quick start says it (its comment aside)."""
    quick_start = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Quick start\n")[1].split("```")[1]
    lines = [line.split("#")[0].strip() for line in quick_start.splitlines()]
    assert command in lines, f"the README's quick start no longer says {command!r}: {lines}"
    return command


def run_demo(*arguments: str, command: str = "bash scripts/demo.sh",
             home: Path | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    """The README's command line plus ``arguments``, through bash from the repository root; ``home``
    is the user's home directory (what ``~`` in the command means)."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("MAILFORCE_")}
    if home is not None:
        environment["HOME"] = str(home)
    began = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", f"{readme_command(command)} {shlex.join(arguments)}"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=DEMO_TIMEOUT_SECONDS,
    )
    return result, time.monotonic() - began


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"


def test_demo_runs_the_dag_through_airflow_and_reports_every_output_index(tmp_path):
    home = tmp_path / "airflow-demo"
    result, _ = run_demo("--home", str(home))

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

    # The pinned engine's own version, not the OpenSearch version it answers as.
    assert re.search(r"^Engine    osmem-server 0\.1\.6 \(answers as OpenSearch [\d.]+\) at http://", output, re.M), output[:300]
    # The sample's dates moved by whole days to end yesterday, said; the files are not touched.
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    assert (f"Dates     sample mail: every date moved {(yesterday - SAMPLE_LAST_DAY).days:,} days later (times of day "
            f"kept), so the latest message, written {SAMPLE_LAST_DAY}, is dated {yesterday} (yesterday, UTC); the files "
            "are unchanged (--sample-dates as-written keeps their dates; your own mail is never moved)") in output
    latest_contacts = [date.fromisoformat(line.split()[6][:10]) for line in top_domains]
    assert max(latest_contacts) <= yesterday and max(latest_contacts) >= yesterday - timedelta(days=30), latest_contacts
    # Per input, where its accounts came from (the sample carries the X-Origin header).
    assert "            sample/mail/kunai-sara.mbox: 97 messages, account kunai-sara (from the X-Origin header)" in output
    # The numbers add up, each difference with its reason.
    assert output.split("\nCounted   ")[1].split("\n\n")[0].splitlines() == [
        "496 messages loaded into the source index",
        "          -   2 without a usable date (no window selects them; see the loader's raw dates)",
        "          = 494 read by the run (runtime stats: source_documents)",
        "          -   1 further copies of a message already in the same mailbox (united into one)",
        "          = 493 messages processed (emails_processed)",
        "          -  59 with no outside address left (only addresses at internal kunaico.com, or invalid ones): "
        "no roles document",
        f"          = {counts['search-message-roles']} message-roles documents",
    ]
    assert counts["search-message-roles"] == 434
    # Something to look at: the HTML report, in the git-ignored home.
    report = home / "mailforce-report.html"
    assert f"Report    {report} (open it in a browser)" in output
    assert report.stat().st_size > 100_000 and "acme-logistics.com" in report.read_text(encoding="utf-8")
    assert "the engine is stopped, its indices are gone (--keep leaves it running)" in output

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


def test_demo_exits_non_zero_with_the_task_error_when_the_run_fails(tmp_path):
    result, _ = run_demo("--home", str(tmp_path / "airflow-demo"), "--conf", '{"no_such_param": 1}')

    assert result.returncode == 1, describe(result)
    assert "demo failed: the DAG run failed: task fetch_watermark" in result.stderr
    assert "no_such_param" in result.stderr
    assert "Output indices" not in result.stdout


def own_export(user_home: Path) -> Path:
    """The README's ``~/export.mbox``: one sample mailbox as a mail program exports it, without its
    X-Origin headers."""
    mbox = user_home / "export.mbox"
    user_home.mkdir(parents=True, exist_ok=True)
    lines = (ROOT / "sample" / "mail" / "kunai-sara.mbox").read_bytes().splitlines(keepends=True)
    mbox.write_bytes(b"".join(line for line in lines if not line.startswith(b"X-Origin:")))
    assert b"X-Origin" not in mbox.read_bytes()
    return mbox


def test_own_mail_without_the_header_loads_under_its_owner_and_keep_leaves_the_engine_to_ask(tmp_path):
    home = tmp_path / "airflow-demo"
    mbox = own_export(tmp_path / "user")
    result, _ = run_demo("--home", str(home), "--keep", command="bash scripts/demo.sh --mail ~/export.mbox",
                         home=mbox.parent)
    try:
        assert result.returncode == 0, describe(result)
        output = result.stdout
        assert re.search(rf"^            {re.escape(str(mbox))}: 97 messages, account "
                         r"sara@kunaico\.com \(from the mailbox owner's address\)$", output, re.M), output[:1500]
        # Your own mail keeps its dates (only the sample's are moved).
        assert "Dates     " not in output and re.search(r"^  acme-logistics\.com .* 2025-", output, re.M)
        # The owner's domain is internal; the sample's setting is not applied to the user's own mail.
        assert "Internal  kunaico.com (the mailbox owner's domain;" in output
        assert "MAILFORCE_INTERNAL_DOMAINS=kunaico.com" not in output
        assert re.search(r"^  sara@kunaico\.com\s+\d+\s+\d+\s+\d+\s+\d+$", output, re.M)
        assert "          = 97 messages processed (emails_processed)" in output
        url = re.search(r"^Kept      the engine runs at (http://\S+);", output, re.M).group(1)
        asked = subprocess.run([sys.executable, "-m", "mailforce.tools.who_knows", "acme-logistics.com", "--url", url,
                                "--engine", "osmem", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                               env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")})
        assert asked.returncode == 0, asked.stderr
        answer = json.loads(asked.stdout)
        assert answer["messages"] == 36 and [row["account"] for row in answer["ranked"]] == ["sara@kunaico.com"]
    finally:
        subprocess.run([sys.executable, "-m", "mailforce.tools.embedded", "stop", "--pidfile", str(home / "engine.pid")],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")}, timeout=60)


def test_mail_that_loads_nothing_stops_the_demo_with_why_and_exit_2(tmp_path):
    (tmp_path / "photo.mbox").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    result, _ = run_demo("--home", str(tmp_path / "airflow-demo"), "--mail", str(tmp_path / "photo.mbox"))

    assert result.returncode == 2, describe(result)
    assert result.stderr.strip().splitlines()[-1] == (
        f"demo failed: nothing could be read from {tmp_path / 'photo.mbox'}: 1 unreadable "
        f"({tmp_path / 'photo.mbox'}: not an mbox: binary content). Give a Maildir, an mbox file or a folder of .eml "
        "files, as exported by the mail program.")
    assert "Running mailforce_engagements" not in result.stdout and "Traceback" not in result.stderr

    result, _ = run_demo("--home", str(tmp_path / "airflow-demo"), "--mail", str(tmp_path / "no-such-export"))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"demo failed: mail not found: {tmp_path / 'no-such-export'}. Check the path given to --mail.")


def test_the_reconciliation_explains_a_difference_no_reason_covers():
    from mailforce.tools.demo import reconciliation_lines

    stats = {"source_documents": 10, "undated_source_documents": 1, "emails_processed": 8, "skipped_no_date": 1}
    assert reconciliation_lines(12, stats, 7, []) == [
        "Counted   12 messages loaded into the source index",
        "          -  1 without a usable date (no window selects them; see the loader's raw dates)",
        "          -  1 not selected by the run's window for another reason",
        "          = 10 read by the run (runtime stats: source_documents)",
        "          -  1 skipped by the run (no parseable date, or no account)",
        "          -  1 further copies of a message already in the same mailbox (united into one)",
        "          =  8 messages processed (emails_processed)",
        "          -  1 with no outside address left (only invalid addresses): no roles document",
        "          =  7 message-roles documents",
    ]


def test_the_reconciliation_of_a_rerun_says_which_messages_were_counted_before():
    from mailforce.tools.demo import reconciliation_lines

    stats = {"source_documents": 12, "emails_processed": 10, "counted_messages": 4, "unchanged_messages": 8}
    assert reconciliation_lines(12, stats, 9, ["kunaico.com"]) == [
        "Counted   12 messages loaded into the source index",
        "          = 12 read by the run (runtime stats: source_documents)",
        "          -  2 dated before the window, re-read for the allowed lateness, counted before and unchanged",
        "          = 10 messages processed (emails_processed), 6 of them counted by an earlier run and unchanged",
        "          -  1 with no outside address left (only addresses at internal kunaico.com, or invalid ones): "
        "no roles document",
        "          =  9 message-roles documents",
    ]
