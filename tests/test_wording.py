"""What a person reads: one window notation, plurals, the one-line run summary, the run's duration
from its first start (retries included)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from mailforce.core.summaries import FetchedWindow
from mailforce.core.window import Window
from mailforce.core.wording import describe_window, duration_text, plural, run_summary, window_notation
from mailforce.dag_tasks import run_started_at

END = datetime(2001, 6, 1, tzinfo=timezone.utc)
START = datetime(2001, 5, 1, tzinfo=timezone.utc)


def test_one_window_notation():
    assert describe_window(Window(window_end=END, window_start=START)) == "(2001-05-01T00:00:00Z, 2001-06-01T00:00:00Z]"
    assert describe_window(Window(window_end=END, window_start=START, start_inclusive=True)) == \
        "[2001-05-01T00:00:00Z, 2001-06-01T00:00:00Z]"
    assert describe_window(Window(window_end=END)) == "(the beginning, 2001-06-01T00:00:00Z]"
    assert window_notation(None, "2001-06-01T00:00:00Z") == "(the beginning, 2001-06-01T00:00:00Z]"


def test_plurals():
    assert plural(1, "domain") == "1 domain"
    assert plural(2, "domain") == "2 domains"
    assert plural(1, "source document") == "1 source document"
    assert plural(1204, "message") == "1,204 messages"
    assert plural(1, "invalid address", "invalid addresses") == "1 invalid address"
    assert duration_text(42.4) == "42 s" and duration_text(185) == "3 min 5 s" and duration_text(3720) == "1 h 2 min"


STATS = {
    "window_start": "2001-05-01T00:00:00Z", "window_start_inclusive": False, "window_end": "2001-06-01T00:00:00Z",
    "emails_processed": 1204, "email_accounts_processed": 1, "domains_processed": 1, "partitions": 1,
    "late_messages": 0, "exclude_accounts": ["kunai-raj"], "backfill": False,
    "documents_written": {"message_roles": 1204, "relationships": 10},
}


def test_run_summary_is_one_line_with_every_figure():
    line = run_summary(STATS, 75.0)
    assert line == ("Window (2001-05-01T00:00:00Z, 2001-06-01T00:00:00Z]; 1,204 messages of 1 account "
                    "(excluded: kunai-raj); 1 domain in 1 partition; 0 late messages; 1,214 documents written; "
                    "1 min 15 s including retries")


def test_run_summary_warns_of_unknown_accounts_and_says_unchanged():
    line = run_summary({**STATS, "documents_written": {"message_roles": 0}}, 3,
                       {"backfilled_accounts": ["kunai-jimm"]})
    assert "no document written (all unchanged)" in line
    assert line.endswith("WARNING unknown accounts (backfilled_accounts kunai-jimm): not in the source index: "
                         "mistyped, or a mailbox not loaded yet (the run goes on; nothing is read for them)")
    assert "\n" not in line


def test_duration_counts_from_the_first_start_even_after_a_cleared_instance():
    first_task = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
    fetched = FetchedWindow(window=Window(window_end=END), run_started=first_task)
    # Clearing an instance resets the DAG run's start_date to the re-run's start.
    cleared = SimpleNamespace(start_date=first_task + timedelta(hours=2))
    assert run_started_at({"dag_run": cleared}, fetched) == first_task
    scheduled = SimpleNamespace(start_date=first_task - timedelta(seconds=5))
    assert run_started_at({"dag_run": scheduled}, fetched) == first_task - timedelta(seconds=5)
    assert run_started_at({"dag_run": SimpleNamespace(start_date=None)}, fetched) == first_task


def test_compile_logs_say_added_recomputed_and_unchanged_and_record_no_event_when_unchanged(es, settings, caplog):
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from mailforce.core.run_params import RunRequest
    from mailforce.dag_tasks import announce_outputs
    from mailforce.core.summaries import RescoreResult
    from mailforce.es.scoring import scoring_for
    from mailforce.stages.compile_domain_partition import compile_domain_partition
    from mailforce.stages.extract_message_roles import extract_message_roles
    from mailforce.stages.fetch_watermark import fetch_watermark
    from mailforce.stages.list_domains import list_domains
    from mailforce.es.scoring import last_scoring_date
    from mailforce.stages.rescore_relationships import run_scoring_date
    from mailforce.tools.synthetic import dirty_corpus
    from support import load_source

    load_source(es, settings, dirty_corpus()[:60])
    fetched = fetch_watermark(es, settings, RunRequest(), datetime(2030, 1, 1, tzinfo=timezone.utc))
    extraction = extract_message_roles(es, settings, fetched.window, "run-1")
    partition = list_domains(extraction, settings)[0]
    scoring = scoring_for(settings, run_scoring_date(fetched.window.window_end, last_scoring_date(es, settings)))

    with caplog.at_level("INFO", logger="mailforce"):
        first = compile_domain_partition(es, settings, partition, "run-1", add_window=True, scoring=scoring)
        retry = compile_domain_partition(es, settings, partition, "run-1", add_window=False, scoring=scoring)
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Partition 1/")]
    assert len(lines) == 2, lines
    assert "added this run's new mail to" in lines[0] and "; wrote " in lines[0], lines[0]
    assert "recomputed" in lines[1] and "(this task is a retry: an earlier attempt may have added part of the " \
        "window)" in lines[1], lines[1]
    assert "unchanged (every document was already up to date, nothing written)" in lines[1], lines[1]
    assert " 1 domains" not in " ".join(lines) and " 1 roles documents" not in " ".join(lines)

    # Announced once per run: an event per compiled output with what the run wrote; none when unchanged.
    from airflow.sdk.exceptions import AirflowSkipException

    rescored = RescoreResult(scoring_date=scoring.scoring_date.isoformat()).to_xcom()
    written_events, unchanged_events = OutletEventAccessors(), OutletEventAccessors()
    counts = announce_outputs({"outlet_events": written_events, "run_id": "run-1"}, [first.to_xcom()], rescored)
    assert counts == {kind: first.written.count(kind) for kind in counts} and sum(counts.values()) > 0
    from mailforce.assets import compiled_assets

    for asset in compiled_assets(settings):
        extra = written_events[asset].extra
        assert extra["index"] == asset.name and extra["run_id"] == "run-1", extra
        assert extra["documents_written"] == sum(
            count for kind, count in counts.items() if settings_index(settings, kind) == asset.name), extra
    with pytest.raises(AirflowSkipException):
        announce_outputs({"outlet_events": unchanged_events, "run_id": "run-1"}, [retry.to_xcom()], rescored)
    assert all(not unchanged_events[asset].extra for asset in compiled_assets(settings))  # nothing written: no event


def settings_index(settings, kind: str) -> str:
    from mailforce.assets import output_assets

    return output_assets(settings)[kind].name


def test_the_late_mail_sentence_says_every_late_day_and_what_late_means_for_the_run():
    from mailforce.core.summaries import ExtractionSummary
    from mailforce.stages.extract_message_roles import late_messages_sentence

    days = tuple(f"2001-{month:02d}-{day:02d}" for month in range(1, 6) for day in range(1, 26))[:123]
    late = ExtractionSummary(late_messages=150, late_accounts=("a", "b"), late_days=days[:100], late_days_count=123)
    normal = Window(window_end=END, window_start=START)
    assert late_messages_sentence(late, normal) == (
        "Counted 150 late messages (dated at or before this window's start) in 2 accounts (a, b), on 123 days "
        f"({', '.join(days[:10])}, and 113 more)")
    reconciliation = Window(window_end=END, reconciliation=True)
    assert late_messages_sentence(late, reconciliation).startswith(
        "Counted 150 late messages (missed by every earlier run, found by this reconciliation) in 2 accounts")
    assert late_messages_sentence(ExtractionSummary(), reconciliation) == (
        "Counted no late messages (the reconciliation found nothing missing)")
    assert late_messages_sentence(ExtractionSummary(), normal) == (
        "Counted no late messages (none dated at or before this window's start)")
