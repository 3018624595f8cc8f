"""Smoke test of scripts/benchmark.py: a tiny run exits 0 and prints every figure (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One label per figure the benchmark promises (docs/BENCHMARK.md explains each).
FIGURES = [
    "Source load (not pipeline time)",
    "messages/s end to end (pipeline wall)",
    "messages/s end to end (process wall)",
    "pipeline wall (first task start -> last task end)",
    "data stages wall",
    "Time per stage",
    "extract_message_roles",
    "compile_domain_partition",
    "publish_stats",
    "peak RSS (airflow dags test process)",
    "CPU: airflow process / engine / rest of the machine",
    "Documents per output index",
    "search-message-roles",
    "search-accounts-engagements",
    "search-accounts_statistics_simple",
    "search-domains-engagements",
    "search-runtime-stats",
    "scan window, needed fields only",
    "bulk-index all outputs",
    "I/O floor (scan + bulk)",
    "ratio pipeline / floor (pipeline wall)",
    "incremental fraction of the full run (pipeline wall)",
    "incremental I/O floor",
    "Partitions vs wall time",
    "largest partition share",
    "parallel compile wall",
    "product's own time, full run (in process)",
    "Airflow's fixed cost",
    "old script's shape",
    "hourly run, 1 % new, default lateness / lateness 0",
    "reconciliation that finds nothing",
    "rescore on a day change",
    "search-relationships",
    "search-contacts",
    "search-engagement-timeline",
]


def test_benchmark_prints_every_figure(tmp_path):
    figures_file = tmp_path / "figures.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILFORCE_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--messages", "200", "--partitions", "1,2",
         "--in-process", "--json", str(figures_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}"
    missing = [figure for figure in FIGURES if figure not in result.stdout]
    assert not missing, f"figures missing from the output: {missing}\n{result.stdout}"
    for line in result.stdout.splitlines():  # every partition count has its row
        if line.startswith(("1  ", "2  ")):
            assert "%" in line
    figures = json.loads(figures_file.read_text())
    scenario = figures["scenarios"][0]
    assert scenario["full"]["messages"] > 0
    assert scenario["full"]["peak_rss_mb"] > 0
    assert scenario["floor"]["floor_seconds"] > 0
    assert [entry["slots"] for entry in scenario["partition_sweep"]] == [1, 2]
    assert scenario["incremental"]["new_source_documents"] > 0
    assert 0 < scenario["full"]["documents_by_index"]["search-message-roles"] <= scenario["full"]["messages"]
    summary = scenario["in_process"]["summary"]
    assert summary["full_seconds"] > 0 and summary["old_script_seconds"] > 0
    assert summary["rescore_relationships_read"] >= scenario["full"]["documents_by_index"]["search-relationships"] > 0
    assert scenario["in_process"]["reconcile"][0]["messages"] == 0  # nothing to find


def test_a_bad_benchmark_argument_is_answered_in_two_lines_with_exit_2():
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    for arguments, problem in ((["--messages", "ten"], "argument --messages: expected whole numbers >= 1, got 'ten'"),
                               (["--incremental-fraction", "0.7"], "--incremental-fraction must be in [0, 0.5)")):
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), *arguments],
                              capture_output=True, text=True, env=environment, timeout=120)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.splitlines() == [f"scripts/benchmark.sh: {problem}",
                                            "Run `scripts/benchmark.sh --help` for the options."], done.stderr
