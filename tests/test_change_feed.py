"""The change feed (issue 24 item 2): one document per crossing of a strength band, equal to the
oracle's independent computation of the bands on successive scoring dates, over windows, late mail
and reconciliation, erasure, and a run that died half-way."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta, timezone

import pytest
from elasticsearch import helpers

from driver import run_once, run_stages
from mailforce.core.changes import BAND_NONE, Bands, change_document
from mailforce.core.dates import format_utc
from mailforce.core.run_params import RunRequest
from mailforce.settings import Settings, SettingsError
from mailforce.stages.erase import erase
from mailforce.stages.reconcile import reconcile_window
from mailforce.tools.synthetic import dirty_corpus
from oracle import Coverage, FeedStep, assert_changes_equal, expected_changes, read_changes
from harvester import T0
from support import load_source, read_source, run, utc
from test_erasure import REQUEST, chosen_erasures, new_mail_from

UTC = timezone.utc


def coverage_of(stats: dict) -> Coverage:
    """What a run covered, from its record (a run fact): its window, reaching back to `read_from`."""
    start = stats.get("read_from") or stats.get("window_start")
    return Coverage(window_start=utc(start) if start else None, window_end=utc(stats["window_end"]))


def assert_feed_matches(es, settings: Settings, source: list[dict], steps: list[FeedStep]) -> dict:
    expected = expected_changes(source, steps, settings.internal_domains, settings.allowed_domains,
                                bands=(settings.strength_band_strong, settings.strength_band_warm,
                                       settings.strength_band_cooling),
                                half_life_days=settings.strength_half_life_days)
    assert_changes_equal(read_changes(es, settings.changes_index), expected)
    return expected


def causes(feed: dict) -> set[str]:
    return {document["cause"] for document in feed.values()}


# --- bands ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("strength", "band"), [
    (None, "none"), (0, "cold"), (9, "cold"), (10, "cooling"), (29, "cooling"), (30, "warm"), (59, "warm"),
    (60, "strong"), (100, "strong"),
])
def test_a_band_is_a_function_of_the_strength_with_inclusive_lower_bounds(strength, band):
    assert Bands().of(strength) == band


def test_band_settings_must_be_ordered_and_are_named_when_wrong():
    assert Settings(strength_band_strong=80, strength_band_warm=50, strength_band_cooling=20).strength_bands.of(50) \
        == "warm"
    with pytest.raises(SettingsError, match="strength_band_warm"):
        Settings(strength_band_warm=70)
    with pytest.raises(SettingsError, match="cooling"):
        Settings(strength_band_cooling=0)


def test_a_crossing_carries_the_figures_behind_it_and_the_relationships_extra_fields():
    relationship = {"account": "kunai-jim", "email_address": "ann@acme.com", "domain": "acme.com",
                    "organization": "acme.com", "from_count": 3, "to_count": 4, "cc_count": 2, "total_count": 7,
                    "first_engagement_date": "2001-01-01T10:00:00Z", "latest_engagement_date": "2001-05-01T10:00:00Z",
                    "two_way": True, "automated": False, "strength": 8}
    document = change_document(relationship, strength_before=39, bands=Bands(), scoring_date=date(2001, 10, 1),
                               cause="time")
    assert (document["from_band"], document["to_band"], document["direction"], document["went_cold"]) == \
        ("warm", "cold", "down", True)
    assert document["scoring_date"] == "2001-10-01T00:00:00Z" and document["organization"] == "acme.com"
    assert (document["strength_before"], document["strength"], document["total_count"]) == (39, 8, 7)
    new = change_document(relationship, strength_before=None, bands=Bands(), scoring_date=date(2001, 10, 1),
                          cause="mail")
    assert (new["from_band"], new["direction"], new["went_cold"]) == (BAND_NONE, "up", False)
    assert "person_id" not in new  # only what the relationship carries


# --- against the oracle --------------------------------------------------------------------------

ENRON_RUN_ENDS = ("2000-12-31T23:59:59Z", "2001-06-30T12:00:00Z", "2002-06-30T00:00:00Z",
                  "2002-07-31T00:00:00Z", "2003-06-30T00:00:00Z")


def test_scheduled_windows_then_idle_days_record_every_crossing_the_oracle_finds(es, settings, enron):
    source = enron
    steps = []
    for number, end in enumerate(ENRON_RUN_ENDS):
        stats = run(es, settings, f"scheduled-{number}", run_end=utc(end))
        steps.append(FeedStep(coverage=coverage_of(stats)))
        if number in (1, 3):  # midway too: the feed is exact after each run, not only at the end
            assert_feed_matches(es, settings, source, steps)
    feed = assert_feed_matches(es, settings, source, steps)
    assert causes(feed) == {"mail", "time"}
    assert any(document["went_cold"] for document in feed.values())
    assert any(document["cause"] == "mail" and document["from_band"] != BAND_NONE for document in feed.values())
    # each run's record counts what it recorded (no key is recorded twice in this history)
    es.indices.refresh(index=settings.runtime_stats_index)
    recorded = sum(hit["_source"]["documents_written"]["relationship_changes"]
                   for hit in helpers.scan(es, index=settings.runtime_stats_index))
    assert recorded == len(feed)


def test_an_idle_run_on_the_same_day_records_nothing_and_a_rerun_of_the_day_rewrites_the_same_documents(es, settings):
    documents = dirty_corpus()
    load_source(es, settings, documents)
    first = run(es, settings, "first", run_end=utc("2001-07-01T00:00:00Z"))
    before = read_changes(es, settings.changes_index)
    assert before and all(document["from_band"] == BAND_NONE for document in before.values())
    again = run(es, settings, "same-day", run_end=utc("2001-07-01T10:00:00Z"))
    assert again["documents_written"]["relationship_changes"] == 0
    assert read_changes(es, settings.changes_index) == before
    assert_feed_matches(es, settings, documents, [FeedStep(coverage=coverage_of(first)),
                                                  FeedStep(coverage=coverage_of(again))])


def test_a_run_killed_after_some_partitions_then_rerun_records_what_one_run_would(es, settings, enron):
    source = enron
    first = run(es, settings, "before", run_end=utc(ENRON_RUN_ENDS[0]))
    with pytest.raises(RuntimeError, match="simulated failure"):
        run_once(es, settings, RunRequest(), utc(ENRON_RUN_ENDS[2]), "dies", stop_after_partitions=1)
    rerun = run(es, settings, "rerun", run_end=utc(ENRON_RUN_ENDS[2]))
    assert_feed_matches(es, settings, source, [FeedStep(coverage=coverage_of(first)),
                                               FeedStep(coverage=coverage_of(rerun))])


def test_late_mail_counted_by_a_reconciliation_crosses_bands_as_the_oracle_says(es, settings, enron):
    """A too-short lateness misses mail indexed after its run; the reconciliation counts it at the
    scoring date it finds (the watermark's), and later runs decay from there."""
    settings = replace(settings, allowed_lateness="1h")
    everything = sorted(enron, key=lambda document: document["_id"])
    es.indices.delete(index=settings.source_index)
    first_end, second_end = "2001-03-31T00:00:00Z", "2001-09-30T00:00:00Z"
    dated = [document for document in everything if document["_source"].get("date")]
    late = [document for number, document in enumerate(dated)
            if number % 5 == 0 and document["_source"]["date"] <= "2001-03-01"]  # indexed after run 1
    late_ids = {document["_id"] for document in late}
    first_batch = [document for document in everything if document["_id"] not in late_ids]
    steps = []
    visible = []

    def scheduled(run_id: str, end: str, batch: list[dict]) -> None:
        load_source(es, settings, batch)
        visible.extend(batch)
        stats = run(es, settings, run_id, run_end=utc(end))
        steps.append(FeedStep(coverage=coverage_of(stats), visible=list(visible)))

    scheduled("first", first_end, first_batch)
    scheduled("second", second_end, late)  # dated long before the window: missed
    record = run_stages(es, settings, reconcile_window(es, settings), "reconcile")
    assert record["reconciliation"] and record["late_messages"] > 0
    steps.append(FeedStep(coverage=coverage_of(record), visible=list(visible)))
    scheduled("third", "2002-01-31T00:00:00Z", [])
    scheduled("fourth", "2002-12-31T00:00:00Z", [])
    feed = assert_feed_matches(es, settings, everything, steps)
    without_reconciliation = expected_changes(everything, steps[:2] + steps[3:], half_life_days=90)
    assert feed != without_reconciliation  # the reconciliation's mail made crossings of its own
    assert {"mail", "time"} <= causes(feed)


def test_arrival_windows_over_a_harvest_with_lags_record_what_the_oracle_finds(es, settings, harvest):
    """Hourly runs windowed on the arrival stamp (tests/harvester.py, as the late-mail tests): a run counts
    every message that has arrived and is dated by its end, so the oracle's run k covers exactly
    that; a run four months later decays what they built."""
    settings = replace(settings, arrival_field="indexed_at")
    loaded: dict[str, dict] = {}
    steps = []
    for hour in list(range(1, 17)) + [24 * 120]:
        run_end = T0 + timedelta(hours=hour)
        batch = [{"_id": identifier, "_source": dict(source, indexed_at=format_utc(arrival))}
                 for identifier, source, arrival in harvest if arrival <= run_end and identifier not in loaded]
        load_source(es, settings, batch)
        loaded.update((document["_id"], document) for document in batch)
        run_once(es, settings, RunRequest(), run_end, f"scheduled-{hour:04d}")
        steps.append(FeedStep(coverage=Coverage(window_end=run_end), visible=list(loaded.values())))
    feed = assert_feed_matches(es, settings, list(loaded.values()), steps)
    assert causes(feed) == {"mail", "time"}
    assert any(document["cause"] == "mail" and document["from_band"] != BAND_NONE for document in feed.values())


def test_erasure_removes_the_crossings_of_the_erased_and_later_runs_never_bring_them_back(es, settings):
    documents = dirty_corpus()
    load_source(es, settings, documents)
    first = run(es, settings, "dirty", run_end=utc("2001-07-01T00:00:00Z"))
    steps = [FeedStep(coverage=coverage_of(first))]
    addresses, domain = chosen_erasures(es, settings)
    named = [key for key in read_changes(es, settings.changes_index) if key[1] in addresses or
             key[1].endswith("@" + domain)]
    assert named
    record = erase(es, settings, {"addresses": addresses, "domains": [domain], **REQUEST})
    assert record["removed"]["changes"] == len(named)
    steps.append(FeedStep(erased_addresses=tuple(addresses), erased_domains=(domain,)))
    assert_feed_matches(es, settings, documents, steps)

    later = new_mail_from(addresses, domain, "bystander@example-new.com")
    load_source(es, settings, later)
    second = run(es, settings, "after-erasure", run_end=utc("2030-07-01T00:00:00Z"))
    steps.append(FeedStep(coverage=coverage_of(second)))
    feed = assert_feed_matches(es, settings, read_source(es, settings), steps)
    assert not [key for key in feed if key[1] in addresses or key[1].endswith("@" + domain)]
    assert ("after@kunaico.com", "bystander@example-new.com") in {key[:2] for key in feed}


# --- the example digest DAG ----------------------------------------------------------------------

def strong_then_cold_mail() -> list[dict]:
    """Ten two-way messages with ann@acme.com in January 2001 (warm at the month's end, cold a year
    and a half later), and one message to a newcomer in 2002 (new, not gone cold)."""
    documents = []
    for day in range(1, 11):
        sender, recipient = ("ann@acme.com", "jim@kunaico.com") if day % 2 else ("jim@kunaico.com", "ann@acme.com")
        documents.append({"_id": f"m{day}", "_source": {
            "account": "kunai-jim", "messageId": f"<m{day}@x>", "date": f"2001-01-{day:02d}T10:00:00Z",
            "from": {"address": sender}, "to": {"address": recipient}}})
    documents.append({"_id": "new", "_source": {
        "account": "kunai-jim", "messageId": "<new@x>", "date": "2002-06-01T10:00:00Z",
        "from": {"address": "jim@kunaico.com"}, "to": {"address": "newcomer@beta.org"}}})
    return documents


@pytest.fixture(scope="module")
def digest_dag():
    import os

    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    db.resetdb()
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    return bag.dags["mailforce_cold_digest"]


class _Webhook:
    """A local HTTP endpoint that keeps what was posted to it, and the path it was posted to."""

    def __enter__(self):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_the_digest_reads_the_scoring_dates_of_its_triggering_events_and_builds_the_webhook_url():
    from types import SimpleNamespace

    from mailforce.digest import scoring_dates_of, webhook_url

    events = {"asset": [SimpleNamespace(extra={"scoring_date": "2002-06-30"}), SimpleNamespace(extra={}),
                        SimpleNamespace(extra={"scoring_date": "2002-06-29"}), SimpleNamespace(extra=None)]}
    assert scoring_dates_of(events) == [date(2002, 6, 29), date(2002, 6, 30)]
    assert scoring_dates_of(None) == []

    def connection(**fields):
        return SimpleNamespace(**{"conn_id": "hook", "host": None, "schema": None, "port": None, "password": None,
                                  **fields})

    assert webhook_url(connection(host="https://hooks.slack.com/", password="/services/T/B/x")) == \
        "https://hooks.slack.com/services/T/B/x"
    assert webhook_url(connection(host="crm.example", port=8443)) == "https://crm.example:8443"
    with pytest.raises(ValueError, match="'hook' has no host"):
        webhook_url(connection())


def test_the_digest_dag_is_scheduled_on_the_feed_and_an_example_with_retries(digest_dag):
    assets = list(digest_dag.timetable.asset_condition.objects)
    assert [asset.name for asset in assets] == ["search-relationship-changes"]
    assert all(asset.group == "mailforce" for asset in assets)
    assert "example" in digest_dag.tags and digest_dag.doc_md
    assert all(task.retries >= 1 and task.doc_md for task in digest_dag.tasks)


def test_the_digest_posts_each_account_its_relationships_gone_cold_and_never_logs_the_secret(
        digest_dag, es, es_url, settings, monkeypatch, caplog, capfd):
    import json
    import os
    from pathlib import Path

    # the mailbox's own address by setting: in January jim@ and ann@ are on all ten messages (a tie)
    settings = replace(settings, internal_domains=("kunaico.com",), account_addresses=("kunai-jim=jim@kunaico.com",))
    load_source(es, settings, strong_then_cold_mail())
    run(es, settings, "january", run_end=utc("2001-01-31T00:00:00Z"))
    run(es, settings, "next-june", run_end=utc("2002-06-30T00:00:00Z"))
    [gone] = [document for document in read_changes(es, settings.changes_index).values() if document["went_cold"]]
    assert (gone["email_address"], gone["from_band"], gone["cause"]) == ("ann@acme.com", "warm", "time")

    secret = "services/T000/B000/very-secret-4711"
    host, port = es_url.rsplit("//", 1)[1].split(":")
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", json.dumps(
        {"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http", "extra": {"engine": "osmem"}}))
    monkeypatch.setenv("MAILFORCE_DIGEST_WEBHOOK_CONN_ID", "team_webhook")
    with _Webhook() as webhook:
        monkeypatch.setenv("AIRFLOW_CONN_TEAM_WEBHOOK", json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{webhook.port}", "password": secret}))
        with caplog.at_level("INFO"):
            dag_run = digest_dag.test()
    assert dag_run.state == "success"
    [(path, payload)] = webhook.received
    assert path == "/" + secret
    assert payload["account"] == "kunai-jim" and payload["scoring_dates"] == ["2002-06-30"]
    assert [entry["email_address"] for entry in payload["relationships"]] == ["ann@acme.com"]  # not the newcomer
    assert payload["text"].startswith("kunai-jim: 1 relationship went cold\n- ann@acme.com: warm -> cold on 2002-06-30")
    logs = capfd.readouterr().out + "\n".join(record.getMessage() for record in caplog.records)
    for log_file in (Path(os.environ["AIRFLOW_HOME"]) / "logs").rglob("*"):
        if log_file.is_file():
            logs += log_file.read_text(errors="replace")
    assert "ann@acme.com: warm -> cold" in logs and "Posted the digests of 1 account" in logs
    assert "very-secret-4711" not in logs


def test_an_audit_index_from_before_the_feed_gets_its_counts_and_the_erasure_goes_through(es, settings):
    from mailforce.es.indices import create_index
    from mailforce.es.suppressions import AUDIT_PROPERTIES

    documents = dirty_corpus()[:200]
    load_source(es, settings, documents)
    run(es, settings, "before", run_end=utc("2001-07-01T00:00:00Z"))
    counts = {"properties": {kind: {"type": "integer"} for kind in ("roles", "engagements", "account_stats", "domains",
                                                                    "relationships", "contacts", "timeline")}}
    create_index(es, settings, settings.erasure_audit_index, {**AUDIT_PROPERTIES, "removed": counts, "rewritten": counts},
                 shards=1)  # as the version before the feed created it (strict)
    addresses, domain = chosen_erasures(es, settings)
    record = erase(es, settings, {"addresses": addresses, "domains": [domain], **REQUEST})
    assert record["removed"]["changes"] > 0
    es.indices.refresh(index=settings.erasure_audit_index)
    [stored] = [hit["_source"] for hit in helpers.scan(es, index=settings.erasure_audit_index)]
    assert stored["removed"]["changes"] == record["removed"]["changes"]
