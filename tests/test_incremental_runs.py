"""Incremental, idempotent and restartable: sequences of runs equal the oracle over what they covered."""

from __future__ import annotations

import re

import pytest

from mailforce.core.ids import document_id
from driver import run_once
from mailforce.tools.synthetic import dirty_corpus
from mailforce.core.run_params import RunRequest
from mailforce.es.watermark import read_watermark
from oracle import Coverage
from support import (
    FAR_FUTURE_RUN_END,
    assert_matches_oracle,
    load_source,
    raw_outputs,
    run,
    utc,
)

CUT_1 = "2000-12-31T23:59:59Z"
CUT_2 = "2001-06-30T12:00:00Z"


def _without_updated_at(outputs: dict) -> dict:
    return {
        index: {doc_id: {k: v for k, v in doc.items() if k != "updated_at"} for doc_id, doc in docs.items()}
        for index, docs in outputs.items()
    }


def test_three_scheduled_windows_equal_one_full_run(es, settings, enron):
    source = enron

    first = run(es, settings, "scheduled-1", run_end=utc(CUT_1))
    second = run(es, settings, "scheduled-2", run_end=utc(CUT_2))
    third = run(es, settings, "scheduled-3")

    assert first["window_start"] is None and first["window_end"] == CUT_1
    assert second["window_start"] == CUT_1 and second["window_end"] == CUT_2
    assert third["window_start"] == CUT_2
    assert all(stats["emails_processed"] > 0 for stats in (first, second, third))
    assert_matches_oracle(es, settings, source, [Coverage(window_end=FAR_FUTURE_RUN_END)])


def test_a_run_with_nothing_new_changes_nothing_but_the_stats(es, settings):
    documents = dirty_corpus()
    load_source(es, settings, documents)
    run(es, settings, "first", run_end=utc("2029-01-01T00:00:00Z"))
    before = raw_outputs(es, settings)

    stats = run(es, settings, "nothing-new", run_end=utc("2029-06-01T00:00:00Z"))

    after = raw_outputs(es, settings)
    stats_index = settings.runtime_stats_index
    assert stats["emails_processed"] == 0 and stats["documents_written"]["message_roles"] == 0
    assert {k: v for k, v in after.items() if k != stats_index} == {k: v for k, v in before.items() if k != stats_index}
    assert len(after[stats_index]) == len(before[stats_index]) + 1
    assert read_watermark(es, settings) == utc("2029-06-01T00:00:00Z")


@pytest.mark.extraction_slices(1, 2, 8)
def test_late_mail_in_an_earlier_window_is_united_with_what_was_written(es, settings):
    """A copy of a message arriving in a later window joins the message (roles united, earliest date)."""
    first_copy = {"_id": "copy-1", "_source": {
        "account": "kunai-jim", "messageId": "<m@x>", "date": "2001-01-01T10:00:00Z",
        "from": {"address": "ann@acme.com"}, "to": {"address": ["kunai-jim@kunaico.com"]}}}
    second_copy = {"_id": "copy-2", "_source": {
        "account": "kunai-jim", "messageId": "<m@x>", "date": "2001-01-02T10:00:00Z",
        "from": {"address": "ann@acme.com"}, "cc": {"address": ["bob@beta.org"]}}}
    load_source(es, settings, [first_copy])
    run(es, settings, "window-1", run_end=utc("2001-01-01T23:00:00Z"))
    load_source(es, settings, [second_copy])
    run(es, settings, "window-2", run_end=utc("2001-01-03T00:00:00Z"))

    expected = assert_matches_oracle(es, settings, [first_copy, second_copy], [Coverage(window_end=FAR_FUTURE_RUN_END)])
    message = expected["roles"][("kunai-jim", "<m@x>")]
    assert message["date"] == "2001-01-01T10:00:00Z"
    assert [entry["role"] for entry in message["message_roles"]] == ["From", "CC", "To"]
    assert es.count(index=settings.roles_index)["count"] == 1


@pytest.mark.extraction_slices(1, 8)
def test_the_same_window_twice_leaves_identical_indices(es, settings):
    documents = dirty_corpus()
    load_source(es, settings, documents)
    run(es, settings, "once", from_date="1990-01-01T00:00:00Z")
    first = _without_updated_at(raw_outputs(es, settings))

    run(es, settings, "twice", from_date="1990-01-01T00:00:00Z")

    second = _without_updated_at(raw_outputs(es, settings))
    for index in settings.output_indices[:4]:
        assert second[index] == first[index], index
    assert_matches_oracle(es, settings, documents, [Coverage(window_end=FAR_FUTURE_RUN_END)])


def test_a_run_killed_after_some_partitions_then_rerun(es, settings, enron):
    source = enron
    run(es, settings, "before", run_end=utc(CUT_1))
    watermark = read_watermark(es, settings)

    with pytest.raises(RuntimeError, match="simulated failure"):
        run_once(es, settings, RunRequest(), utc(CUT_2), "dies", stop_after_partitions=1)

    assert read_watermark(es, settings) == watermark == utc(CUT_1)  # no partial watermark
    assert not es.exists(index=settings.runtime_stats_index, id=_stats_id("dies"))
    run(es, settings, "rerun", run_end=utc(CUT_2))
    run(es, settings, "after")
    assert_matches_oracle(es, settings, source, [Coverage(window_end=FAR_FUTURE_RUN_END)])


def test_watermark_is_the_window_end_not_the_wall_clock(es, settings):
    """Mail dated after the run's fixed end (arriving during the run) is processed by the next run."""
    early = {"_id": "early", "_source": {"account": "a", "messageId": "<e@x>", "date": "2001-01-01T00:00:00Z",
                                         "from": {"address": "x@acme.com"}}}
    during = {"_id": "during", "_source": {"account": "a", "messageId": "<d@x>", "date": "2001-01-01T00:00:01Z",
                                           "from": {"address": "y@acme.com"}}}
    load_source(es, settings, [early, during])
    stats = run(es, settings, "fixed-end", run_end=utc("2001-01-01T00:00:00Z"))
    assert stats["emails_processed"] == 1 and read_watermark(es, settings) == utc("2001-01-01T00:00:00Z")
    later = run(es, settings, "next")
    assert later["emails_processed"] == 1
    assert_matches_oracle(es, settings, [early, during], [Coverage(window_end=FAR_FUTURE_RUN_END)])


def _stats_id(run_id: str) -> str:
    from mailforce.core.ids import document_id

    return document_id(run_id)


def test_new_mail_is_added_to_stored_figures_and_copies_force_a_recompute(es, settings, enron, caplog):
    """Windows of new mail take the cheap path (add to the stored documents); the result is exact.

    A late copy of a counted mail in another mailbox that adds nothing across mailboxes (a later
    date, no role the counted copy lacks) is added to its mailbox's figures only; one dated
    earlier sends its domains to recomputation."""
    source = enron
    run(es, settings, "first", run_end=utc(CUT_2))
    counted = [doc for doc in source if doc["_source"].get("messageId") and doc["_source"].get("to")
               and doc["_source"]["date"] < "2001-06"]
    later_copy = {"_id": "later-copy", "_source": dict(counted[0]["_source"], account="late-mailbox",
                                                       date="2001-11-01T00:00:00Z")}
    load_source(es, settings, [later_copy])
    source.append(later_copy)

    with caplog.at_level("INFO", logger="mailforce.stages.list_domains"), \
            caplog.at_level("INFO", logger="mailforce.stages.identify_account_owners"):
        stats = run(es, settings, "second")
    lines = [record.getMessage() for record in caplog.records if "recomputed over all time (a message" in record.getMessage()]
    recomputed, touched = map(int, lines[0].split(" domains")[0].split(" of "))
    # only the domains of mailboxes whose inferred owner the new mail changed (no copy forces one)
    owners = [record.getMessage() for record in caplog.records if "owner addresses of" in record.getMessage()]
    owner_domains = int(owners[0].split(": ")[-1].split(" domain")[0]) if "changed" in owners[0] else 0
    assert recomputed == owner_domains and 0 < touched and stats["domains_processed"] <= touched
    assert_matches_oracle(es, settings, source, [Coverage(window_end=FAR_FUTURE_RUN_END)])
    later_roles = es.get(index=settings.roles_index, id=document_id("late-mailbox", counted[0]["_source"]["messageId"]))
    assert later_roles["_source"]["counted_elsewhere"] is True

    # A copy dated before the counted one lowers the message's date everywhere: recomputed.
    earlier_copy = {"_id": "earlier-copy", "_source": dict(counted[1]["_source"], account="late-mailbox",
                                                           date="1999-01-01T00:00:00Z")}
    load_source(es, settings, [earlier_copy])
    source.append(earlier_copy)
    with caplog.at_level("INFO", logger="mailforce.stages.list_domains"):
        caplog.clear()
        stats = run(es, settings, "third", from_date="1998-12-31T00:00:00Z")
    lines = [record.getMessage() for record in caplog.records if "recomputed over all time" in record.getMessage()]
    recomputed, touched = map(int, re.match(r"(\d+) of (\d+) domains? ", lines[0]).groups())
    assert 0 < recomputed <= touched == stats["domains_processed"]
    assert_matches_oracle(es, settings, source, [Coverage(window_end=FAR_FUTURE_RUN_END)])


def test_a_retried_partition_recomputes_instead_of_adding_the_window_twice(es, settings, enron):
    from mailforce.es.indices import prepare_indices
    from mailforce.core.run_params import resolve_window
    from mailforce.es.scoring import scoring_for
    from mailforce.stages.compile_domain_partition import compile_domain_partition
    from mailforce.stages.compile_people import compile_people
    from mailforce.es.scoring import last_scoring_date
    from mailforce.stages.rescore_relationships import rescore_relationships, run_scoring_date
    from mailforce.stages.extract_message_roles import extract_message_roles
    from mailforce.stages.identify_account_owners import identify_account_owners
    from mailforce.stages.index_account_statistics import index_account_statistics
    from mailforce.stages.list_domains import list_domains

    source = enron
    run(es, settings, "first", run_end=utc(CUT_2))
    prepare_indices(es, settings)
    window = resolve_window(RunRequest(), FAR_FUTURE_RUN_END, read_watermark(es, settings))
    extraction = identify_account_owners(es, settings, extract_message_roles(es, settings, window, "second"), "second")
    partitions = list_domains(extraction, settings)
    rescore_relationships(es, settings, window.window_end)
    scoring = scoring_for(settings, run_scoring_date(window.window_end, last_scoring_date(es, settings)))

    compile_domain_partition(es, settings, partitions[0], "second", add_window=True, scoring=scoring)  # first attempt
    compile_domain_partition(es, settings, partitions[0], "second", add_window=False, scoring=scoring)  # its retry
    for partition in partitions[1:]:
        compile_domain_partition(es, settings, partition, "second", scoring=scoring)
    compile_people(es, settings)
    index_account_statistics(es, settings, extraction.accounts)

    assert_matches_oracle(es, settings, source, [Coverage(window_end=FAR_FUTURE_RUN_END)],
                          scoring_date=FAR_FUTURE_RUN_END)


def test_a_from_date_rerun_of_unchanged_mail_processes_the_window_and_counts_nothing_again(es, settings):
    """emails_processed is the window's (account, message) pairs (docs/SEMANTICS.md "Runs"), counted
    now or before; counted_messages and unchanged_messages say which."""
    documents = [
        {"_id": str(n), "_source": {"account": account, "messageId": f"<{n}@x>", "date": date,
                                    "from": {"address": f"p{n}@acme.com"}}}
        for n, (account, date) in enumerate([("a", "2001-01-01T00:00:00Z"), ("a", "2001-02-01T00:00:00Z"),
                                             ("b", "2001-03-01T00:00:00Z")])
    ]
    load_source(es, settings, documents)
    first = run(es, settings, "first", run_end=utc("2001-06-01T00:00:00Z"))
    assert (first["emails_processed"], first["counted_messages"], first["unchanged_messages"]) == (3, 3, 0)

    again = run(es, settings, "again", run_end=utc("2001-07-01T00:00:00Z"), from_date="2001-02-01T00:00:00Z")

    assert (again["emails_processed"], again["counted_messages"], again["unchanged_messages"]) == (2, 0, 2)
    assert again["email_accounts_processed"] == 2 and again["domains_processed"] == 0
    assert again["documents_written"]["message_roles"] == 0
    from mailforce.core.wording import run_summary
    assert "; 2 messages of 2 accounts (2 of them counted before and unchanged); 0 domains in 0 partitions;" in \
        run_summary(again, 1.0)
