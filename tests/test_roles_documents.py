"""Roles documents (issue 10) and the extraction's late-mail rules, as pure steps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from mailforce.core.extraction import (
    ExtractionTally,
    StoredCopies,
    classify_messages,
    grouped_batches,
    ledger_document,
    ledger_document_id,
    roles_document_id,
    united_messages,
)
from mailforce.core.roles import ROLE_CC, ROLE_TO, SOURCE_FIELDS, ExtractionCounts, Message, roles_document
from mailforce.core.run_params import RunKind, RunRequest, parse_duration, resolve_window
from mailforce.core.window import Window
from mailforce.core.kinds import ROLES_PROPERTIES

UTC = timezone.utc
DAY = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)


def _hit(identifier, account, message_id, date, **extra):
    return {"_id": identifier, "_source": {"account": account, "messageId": message_id, "date": date, **extra}}


def _message(account="a", message_id="<m@x>", date=DAY, roles=(("x@acme.com", ROLE_TO),)):
    return Message(account=account, message_id=message_id, date=date, roles=set(roles))


def test_a_roles_document_lists_the_addresses_of_each_role_and_the_header_flagged_ones():
    hits = [
        _hit("1", "a", "<m@x>", "2024-01-02T10:00:00Z", **{"from": {"address": "News <news@shop.com>"},
             "to": {"address": ["Jim@Acme.com", "list@lists.acme.com"]}, "list_unsubscribe": "<mailto:u@shop.com>"}),
        _hit("2", "a", "<m@x>", "2024-01-02T09:00:00Z", **{"to": {"address": ["jim@acme.com", "list@lists.acme.com"]},
             "cc": {"address": "bob@acme.com"}, "list_id": "Acme list <list.lists.acme.com>"}),
    ]
    [message] = united_messages(hits, lambda _: True, ExtractionCounts())
    document = roles_document(message, "2024-02-01T00:00:00Z", "run")
    assert document["from_addresses"] == ["news@shop.com"]
    assert document["to_addresses"] == ["jim@acme.com", "list@lists.acme.com"]
    assert document["cc_addresses"] == ["bob@acme.com"]
    assert document["automated_addresses"] == ["list@lists.acme.com", "news@shop.com"]  # union over copies
    assert document["date"] == document["key_date"] == "2024-01-02T09:00:00Z"
    for name in ("auto_submitted", "precedence", "list_unsubscribe", "list_id"):
        assert name in SOURCE_FIELDS


def test_message_roles_are_an_object_so_the_nested_limit_is_never_reachable():
    assert ROLES_PROPERTIES["message_roles"]["type"] == "object"
    for name in ("from_addresses", "to_addresses", "cc_addresses", "automated_addresses"):
        assert ROLES_PROPERTIES[name] == {"type": "keyword"}
    assert ROLES_PROPERTIES["key_date"]["type"] == "date"


def test_copies_in_several_accounts_share_the_earliest_date_as_key_date():
    messages = [_message("a", date=DAY), _message("b", date=DAY - timedelta(hours=1)), _message("c", "<n@x>")]
    written = dict(classify_messages(messages, StoredCopies(), ExtractionTally(), "t", "run"))
    by_account = {document["account"]: document for document in written.values()}
    assert by_account["a"]["key_date"] == by_account["b"]["key_date"] == "2024-01-02T09:00:00Z"
    assert by_account["a"]["date"] == "2024-01-02T10:00:00Z"
    assert by_account["c"]["key_date"] == by_account["c"]["date"]


def test_a_new_copy_that_lowers_the_key_date_rewrites_the_other_accounts_documents():
    stored_b = roles_document(_message("b", roles=(("y@globex.org", ROLE_CC),)), "old", "earlier")
    stored = StoredCopies(holders={"<m@x>": {"b"}},
                          by_message={"<m@x>": [(roles_document_id(_message("b")), stored_b)]},
                          successful_runs=frozenset({"earlier"}))
    tally = ExtractionTally()
    written = dict(classify_messages([_message("a", date=DAY - timedelta(days=1))], stored, tally, "now", "run"))
    rewritten = written[roles_document_id(_message("b"))]
    assert rewritten["key_date"] == "2024-01-01T10:00:00Z" and rewritten["run_id"] == "earlier"
    assert rewritten["updated_at"] == "now"
    assert written[roles_document_id(_message("a"))]["key_date"] == "2024-01-01T10:00:00Z"
    assert {"globex.org", "acme.com"} <= tally.recompute_domains  # b's domains, and a's (held elsewhere)


def test_an_unchanged_message_of_a_successful_run_costs_the_lookup_only():
    message = _message()
    previous = roles_document(_message(), "old", "earlier")
    recorded = ledger_document(_message(), "earlier", "old")
    stored = StoredCopies(documents={roles_document_id(message): previous},
                          ledger={ledger_document_id(message): recorded}, successful_runs=frozenset({"earlier"}))
    tally, ledger = ExtractionTally(), []
    assert list(classify_messages([message], stored, tally, "now", "run", ledger=ledger)) == []
    assert (tally.messages, tally.unchanged_messages, ledger) == (0, 1, [])
    assert not tally.work_by_domain and not tally.recompute_domains and not tally.accounts


def test_an_unchanged_message_of_a_crashed_run_still_marks_its_domains():
    message = _message()
    previous = roles_document(_message(), "old", "crashed")
    stored = StoredCopies(documents={roles_document_id(message): previous},
                          ledger={ledger_document_id(message): ledger_document(_message(), "crashed", "old")},
                          successful_runs=frozenset())
    tally, ledger = ExtractionTally(), []
    assert list(classify_messages([message], stored, tally, "now", "run", ledger=ledger)) == []
    assert tally.messages == 1 and tally.recompute_domains == {"acme.com"}
    assert [identifier for identifier, _ in ledger] == [ledger_document_id(message)]


def test_a_message_without_roles_gets_a_ledger_record_once():
    message = _message(roles=())
    tally, ledger = ExtractionTally(), []
    assert list(classify_messages([message], StoredCopies(), tally, "now", "run", ledger=ledger)) == []
    assert len(ledger) == 1 and ledger[0][1]["day"] == "2024-01-02"
    stored = StoredCopies(ledger=dict(ledger), successful_runs=frozenset({"run"}))
    again = ExtractionTally()
    list(classify_messages([_message(roles=())], stored, again, "later", "next", ledger=[]))
    assert (again.messages, again.unchanged_messages) == (0, 1)


def test_late_messages_are_those_dated_at_or_before_the_window_start():
    tally = ExtractionTally()
    messages = [_message("a", "<1>", DAY - timedelta(hours=2)), _message("b", "<2>", DAY + timedelta(hours=1))]
    list(classify_messages(messages, StoredCopies(), tally, "t", "run", late_at_or_before=DAY))
    assert (tally.late_messages, tally.late_accounts, tally.late_days) == (1, {"a"}, {"2024-01-02"})


def test_batches_never_split_the_copies_of_one_message_id():
    messages = [_message(account, f"<{number}>") for number in range(5) for account in ("a", "b", "c")]
    batches = list(grouped_batches(messages, 4))
    assert [len(batch) for batch in batches] == [6, 6, 3]


def test_windows_for_late_mail():
    end, watermark = DAY, DAY - timedelta(hours=1)
    assert parse_duration("6h") == timedelta(hours=6) and parse_duration("0") == timedelta(0)
    lateness = resolve_window(RunRequest(), end, watermark, allowed_lateness=timedelta(hours=6))
    assert lateness.window_start == watermark and lateness.read_from == watermark - timedelta(hours=6)
    assert lateness.date_range() == {"range": {"date": {"gt": "2024-01-02T03:00:00Z", "lte": "2024-01-02T10:00:00Z"}}}
    arrival = resolve_window(RunRequest(), end, watermark, arrival_field="indexed_at")
    assert arrival.arrival_field == "indexed_at" and "indexed_at" in str(arrival.source_query())
    past = resolve_window(RunRequest(), watermark - timedelta(hours=3), watermark,
                          kind=RunKind("scheduled", watermark - timedelta(hours=4)))
    assert past.interval_backfill and past.backfill and not past.moves_watermark
    assert past.window_start == watermark - timedelta(hours=4)
    assert Window.from_xcom(lateness.to_xcom()) == lateness and Window.from_xcom(past.to_xcom()) == past
    nothing = Window(window_end=end, reconciliation=True)
    assert nothing.selection() == {"bool": {"must_not": [{"match_all": {}}]}}
    sliced = Window(window_end=end, reconciliation=True, slices=(("a", "2024-01-01"),))
    assert Window.from_xcom(sliced.to_xcom()) == sliced
