"""The extraction's pure steps, each alone: uniting copies, classifying against what is stored."""

from __future__ import annotations

from datetime import datetime, timezone

from mailforce.core.extraction import (
    ExtractionTally,
    StoredCopies,
    classify_messages,
    roles_document_id,
    united_messages,
)
from mailforce.core.roles import ROLE_CC, ROLE_FROM, ROLE_TO, ExtractionCounts, Message, roles_document
from mailforce.core.summaries import CompileResult, ExtractionSummary, FetchedWindow, RescoreResult, WrittenCounts
from mailforce.core.partitions import plan_partitions, Partition
from mailforce.core.window import Window

UTC = timezone.utc


def _hit(identifier, account, message_id, date, **roles):
    source = {"account": account, "date": date, **{field: {"address": value} for field, value in roles.items()}}
    if message_id is not None:
        source["messageId"] = message_id
    return {"_id": identifier, "_source": source}


def _everything(_: str) -> bool:
    return True


def test_copies_of_one_message_in_one_account_are_united_with_the_earliest_date():
    hits = [
        _hit("1", "a", "<m@x>", "2001-01-02T00:00:00Z", **{"from": "x@acme.com"}),
        _hit("2", "a", "<m@x>", "2001-01-01T00:00:00Z", to="y@acme.com"),
        _hit("3", "b", "<m@x>", "2001-01-03T00:00:00Z", cc="z@acme.com"),
    ]
    counts = ExtractionCounts()
    messages = list(united_messages(hits, _everything, counts))
    assert [(message.account, message.message_id) for message in messages] == [("a", "<m@x>"), ("b", "<m@x>")]
    assert messages[0].roles == {("x@acme.com", ROLE_FROM), ("y@acme.com", ROLE_TO)}
    assert messages[0].date == datetime(2001, 1, 1, tzinfo=UTC)
    assert counts.source_documents == 3


def test_a_copy_without_message_id_is_a_message_by_itself_and_skips_are_counted():
    hits = [
        _hit("1", "a", None, "2001-01-01T00:00:00Z", **{"from": "x@acme.com"}),
        _hit("2", "a", None, "2001-01-01T00:00:00Z", **{"from": "x@acme.com"}),
        _hit("3", "a", "<n@x>", None, **{"from": "x@acme.com"}),
        _hit("4", "", "<n@x>", "2001-01-01T00:00:00Z"),
    ]
    counts = ExtractionCounts()
    messages = list(united_messages(hits, _everything, counts))
    assert [message.message_id for message in messages] == ["1", "2"]
    assert (counts.skipped_no_date, counts.skipped_no_account) == (1, 1)


def _message(account="a", message_id="<m@x>", roles=(("x@acme.com", ROLE_FROM),)):
    return Message(account=account, message_id=message_id, date=datetime(2001, 1, 1, tzinfo=UTC), roles=set(roles))


def test_a_new_message_is_written_and_adds_its_work_without_recompute():
    tally = ExtractionTally()
    written = list(classify_messages([_message()], StoredCopies(), tally, "2024-01-01T00:00:00Z", "run"))
    assert [identifier for identifier, _ in written] == [roles_document_id(_message())]
    assert written[0][1]["run_id"] == "run"
    assert tally.work_by_domain == {"acme.com": 1} and not tally.recompute_domains


def test_an_unchanged_stored_message_is_not_rewritten_but_its_domains_are_recomputed():
    stored_document = roles_document(_message(), "2023-01-01T00:00:00Z", "earlier")
    stored = StoredCopies(documents={roles_document_id(_message()): stored_document})
    tally = ExtractionTally()
    assert list(classify_messages([_message()], stored, tally, "2024-01-01T00:00:00Z", "run")) == []
    assert tally.recompute_domains == {"acme.com"} and tally.messages == 1


def test_a_copy_held_by_another_mailbox_forces_a_recompute():
    stored = StoredCopies(holders={"<m@x>": {"b"}})
    tally = ExtractionTally()
    written = list(classify_messages([_message(roles=[("y@globex.org", ROLE_CC)])], stored, tally, "t", "run"))
    assert len(written) == 1 and tally.recompute_domains == {"globex.org"}


def test_a_message_without_roles_counts_but_is_not_written():
    tally = ExtractionTally()
    assert list(classify_messages([_message(roles=())], StoredCopies(), tally, "t", "run")) == []
    assert tally.messages == 1 and tally.accounts == {"a"} and not tally.work_by_domain


def test_every_summary_survives_its_xcom_form():
    window = Window(window_end=datetime(2001, 2, 1, tzinfo=UTC), window_start=datetime(2001, 1, 1, tzinfo=UTC),
                    start_inclusive=True, accounts=("a",), exclude_accounts=("b",))
    fetched = FetchedWindow(window=window, run_started=datetime(2024, 1, 1, tzinfo=UTC))
    extraction = ExtractionSummary(messages=2, accounts=("a",), work_by_domain={"acme.com": 3},
                                   recompute_domains=("acme.com",), role_entries={ROLE_FROM: 3}, roles_written=2,
                                   undated_source_documents=1, counts=ExtractionCounts(source_documents=4))
    compiled = CompileResult(label="1/1 acme.com", written=WrittenCounts.of(5, {"engagements": 1, "relationships": 4,
                                                                               "timeline": 2}))
    rescored = RescoreResult(scoring_date="2001-02-01", rescored=True, relationships_read=9, relationships_written=3)
    partition = plan_partitions({"acme.com": 100, "globex.org": 1}, 2)[0].with_recompute({"acme.com", "globex.org"})
    for summary in (fetched, extraction, compiled, rescored, partition):
        assert type(summary).from_xcom(summary.to_xcom()) == summary
    assert Partition.from_xcom(partition.to_xcom()).recompute_domains == partition.recompute_domains
    assert compiled.to_xcom() == {"label": "1/1 acme.com", "roles_read": 5, "engagements_written": 1,
                                  "relationships_written": 4, "contacts_written": 0, "timeline_written": 2,
                                  "domains_written": 0, "organizations_written": 0,
                                  "changes_written": 0}  # the flat XCom form every reader knows
