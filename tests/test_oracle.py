"""Tests of the test oracle (tests/oracle.py) and of the synthetic corpus generator.

The oracle's expected values here are worked out by hand from docs/SEMANTICS.md, in the tests.
"""

from __future__ import annotations

import inspect
import re
import tracemalloc
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import pytest

import oracle
from mailforce.tools.synthetic import CorpusSpec, dirty_corpus, iter_corpus
from oracle import Coverage, assert_outputs_equal, expected_outputs, normalise_address, parse_date

UTC = timezone.utc
EVERYTHING = [Coverage(window_end=datetime(2100, 1, 1, tzinfo=UTC))]
INTERNAL = ("kunaico.com",)


def source_doc(
    doc_id: str,
    account: str | None,
    date: Any,
    sender: Any = None,
    to: list | None = None,
    cc: list | None = None,
    message_id: Any = "same-as-id",
) -> dict:
    """A source document; ``to``/``cc`` left None are absent, ``date`` None is absent."""
    source: dict[str, Any] = {}
    if account is not None:
        source["account"] = account
    if message_id == "same-as-id":
        source["messageId"] = f"<{doc_id}@mail.example.com>"
    elif message_id is not None:
        source["messageId"] = message_id
    if date is not None:
        source["date"] = date
    if sender is not None:
        source["from"] = {"address": sender}
    if to is not None:
        source["to"] = {"address": to}
    if cc is not None:
        source["cc"] = {"address": cc}
    return {"_id": doc_id, "_source": source}


def entry(address: str, count: int, earliest: str, latest: str | None = None) -> dict:
    return {
        "email_address": address, "count": count,
        "earliest_engagement_date": earliest, "latest_engagement_date": latest or earliest,
    }


# --------------------------------------------------------------------------------------------------
# Addresses and dates
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("jim@acme.com", "jim@acme.com"),
        ("Jim@Acme.COM", "jim@acme.com"),
        ("  jim@acme.com\t", "jim@acme.com"),
        ("<jim@acme.com>", "jim@acme.com"),
        (" < Jim@Acme.com > ", "jim@acme.com"),
        ('"Jim, J" <jim@acme.com>', "jim@acme.com"),
        ("Jim <jim@acme.com>", "jim@acme.com"),
        ('"a <b>" <jim@acme.com>', "jim@acme.com"),  # the last <...> wins
        ('"José" <JOSÉ@EXÄMPLE.COM>', "josé@exämple.com"),
        ("渡辺@例え.jp", "渡辺@例え.jp"),
        ("jim@mail.acme.co.uk", "jim@mail.acme.co.uk"),
        ("jim@acme.com>", "jim@acme.com>"),  # no '<': kept as is, and '>' is a valid character
    ],
)
def test_valid_addresses_are_normalised(raw: str, normalised: str) -> None:
    assert normalise_address(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    [
        "jim.acme.com",  # no @
        "jim@home@acme.com",  # two @
        "jim@localhost",  # no dot in the domain
        "@acme.com",  # empty local part
        "jim@acme.com.",  # trailing dot: an empty label
        "jim@.acme.com",  # leading dot: an empty label
        "jim smith@acme.com",  # whitespace inside
        "Jim <jim smith@acme.com>",  # whitespace inside the brackets
        "",
        "   ",
        "<>",
        "Jim Smith",
        None,
        42,
        ["jim@acme.com"],
    ],
)
def test_invalid_addresses_are_rejected(raw: Any) -> None:
    assert normalise_address(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2001-05-14T23:39:00Z", datetime(2001, 5, 14, 23, 39, tzinfo=UTC)),
        ("2001-05-14T23:39:00", datetime(2001, 5, 14, 23, 39, tzinfo=UTC)),  # no zone = UTC
        ("2001-05-14T16:39:00-07:00", datetime(2001, 5, 14, 23, 39, tzinfo=UTC)),
        ("2001-05-15T01:39:00+0200", datetime(2001, 5, 14, 23, 39, tzinfo=UTC)),
        ("2001-05-14T23:39:00.123456789Z", datetime(2001, 5, 14, 23, 39, 0, 123456, tzinfo=UTC)),
        ("2001-05-14", datetime(2001, 5, 14, tzinfo=UTC)),
        (989883540000, datetime(2001, 5, 14, 23, 39, tzinfo=UTC)),  # epoch milliseconds
    ],
)
def test_dates_are_parsed_to_utc(raw: Any, expected: datetime) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw", ["not a date", "", "2001-13-45T99:00:00Z", "yesterday", None, True, 1.5, {}])
def test_unparseable_dates_are_none(raw: Any) -> None:
    assert parse_date(raw) is None


def test_format_date_truncates_to_the_second_in_utc() -> None:
    assert oracle.format_date(parse_date("2001-05-14T16:39:59.999-07:00")) == "2001-05-14T23:39:59Z"


# --------------------------------------------------------------------------------------------------
# A complete worked example (every figure computed by hand below)
# --------------------------------------------------------------------------------------------------


def worked_example_docs() -> list[dict]:
    return [
        # jim's copy of m1: bob and carol To, dave CC (jim's own address is internal)
        source_doc("d1", "kunai-jim", "2001-05-14T10:00:00Z", "Jim@KunaiCo.com",
                   ["Bob@Acme.com", " carol@acme.com "], ["dave@globex.org"], message_id="<m1@x>"),
        # 08:30+02:00 is 06:30 UTC; no cc field at all
        source_doc("d2", "kunai-jim", "2001-05-15T08:30:00+02:00", '"Bob, B" <bob@acme.com>',
                   ["jim@kunaico.com"], message_id="<m2@x>"),
        # ann's copy of m1 is earlier and names only bob (not carol, not dave)
        source_doc("d3", "kunai-ann", "2001-05-14T09:59:30.900Z", "jim@kunaico.com",
                   ["<bob@acme.com>"], ["ann@kunaico.com"], message_id="<m1@x>"),
        # no zone: UTC
        source_doc("d4", "kunai-ann", "2001-06-01T12:00:00", "dave@globex.org",
                   ["ann@kunaico.com", "BOB@acme.com"], message_id="<m3@x>"),
        source_doc("d5", "kunai-ann", None, "eve@acme.com", ["ann@kunaico.com"]),  # no date: skipped
        source_doc("d6", "kunai-jim", "not a date", "eve@acme.com", ["jim@kunaico.com"]),  # skipped
        source_doc("d7", None, "2001-05-14T10:00:00Z", "eve@acme.com", ["x@acme.com"]),  # no account
    ]


def worked_example_expected() -> dict:
    roles = {
        ("kunai-jim", "<m1@x>"): {
            "account": "kunai-jim", "message_id": "<m1@x>", "date": "2001-05-14T10:00:00Z",
            "domains": ["acme.com", "globex.org"],
            "message_roles": [
                {"email_address": "bob@acme.com", "domain": "acme.com", "role": "To"},
                {"email_address": "carol@acme.com", "domain": "acme.com", "role": "To"},
                {"email_address": "dave@globex.org", "domain": "globex.org", "role": "CC"},
            ],
        },
        ("kunai-jim", "<m2@x>"): {
            "account": "kunai-jim", "message_id": "<m2@x>", "date": "2001-05-15T06:30:00Z",
            "domains": ["acme.com"],
            "message_roles": [{"email_address": "bob@acme.com", "domain": "acme.com", "role": "From"}],
        },
        ("kunai-ann", "<m1@x>"): {
            "account": "kunai-ann", "message_id": "<m1@x>", "date": "2001-05-14T09:59:30Z",
            "domains": ["acme.com"],
            "message_roles": [{"email_address": "bob@acme.com", "domain": "acme.com", "role": "To"}],
        },
        ("kunai-ann", "<m3@x>"): {
            "account": "kunai-ann", "message_id": "<m3@x>", "date": "2001-06-01T12:00:00Z",
            "domains": ["acme.com", "globex.org"],
            "message_roles": [
                {"email_address": "bob@acme.com", "domain": "acme.com", "role": "To"},
                {"email_address": "dave@globex.org", "domain": "globex.org", "role": "From"},
            ],
        },
    }
    engagements = {
        ("kunai-jim", "acme.com"): {
            "account": "kunai-jim", "domain": "acme.com",
            "emails_from": [entry("bob@acme.com", 1, "2001-05-15T06:30:00Z")],
            "emails_to": [entry("bob@acme.com", 1, "2001-05-14T10:00:00Z"),
                          entry("carol@acme.com", 1, "2001-05-14T10:00:00Z")],
            "emails_cc": [],
            "emails_from_count": 1, "emails_to_count": 2, "emails_cc_count": 0, "total_count": 2,
            "earliest_engagement_date": "2001-05-14T10:00:00Z", "latest_engagement_date": "2001-05-15T06:30:00Z",
        },
        ("kunai-jim", "globex.org"): {
            "account": "kunai-jim", "domain": "globex.org",
            "emails_from": [], "emails_to": [],
            "emails_cc": [entry("dave@globex.org", 1, "2001-05-14T10:00:00Z")],
            "emails_from_count": 0, "emails_to_count": 0, "emails_cc_count": 1, "total_count": 1,
            "earliest_engagement_date": "2001-05-14T10:00:00Z", "latest_engagement_date": "2001-05-14T10:00:00Z",
        },
        ("kunai-ann", "acme.com"): {
            "account": "kunai-ann", "domain": "acme.com",
            "emails_from": [],
            "emails_to": [entry("bob@acme.com", 2, "2001-05-14T09:59:30Z", "2001-06-01T12:00:00Z")],
            "emails_cc": [],
            "emails_from_count": 0, "emails_to_count": 1, "emails_cc_count": 0, "total_count": 2,
            "earliest_engagement_date": "2001-05-14T09:59:30Z", "latest_engagement_date": "2001-06-01T12:00:00Z",
        },
        ("kunai-ann", "globex.org"): {
            "account": "kunai-ann", "domain": "globex.org",
            "emails_from": [entry("dave@globex.org", 1, "2001-06-01T12:00:00Z")],
            "emails_to": [], "emails_cc": [],
            "emails_from_count": 1, "emails_to_count": 0, "emails_cc_count": 0, "total_count": 1,
            "earliest_engagement_date": "2001-06-01T12:00:00Z", "latest_engagement_date": "2001-06-01T12:00:00Z",
        },
    }
    account_stats = {
        "kunai-jim": {"account": "kunai-jim", "emails_from_count": 1, "emails_to_count": 2,
                      "emails_cc_count": 1, "total_emails_count": 4},
        "kunai-ann": {"account": "kunai-ann", "emails_from_count": 1, "emails_to_count": 1,
                      "emails_cc_count": 0, "total_emails_count": 2},
    }
    domains = {
        "acme.com": {
            "domain": "acme.com",
            "first_contact_date": "2001-05-14T09:59:30Z", "latest_contact_date": "2001-06-01T12:00:00Z",
            "total_from": 1, "total_to": 3, "total_cc": 0, "total_emails": 3,
            "accounts": ["kunai-ann", "kunai-jim"],
            "email_engagements": [
                # bob: m1 (To, counted once across both accounts, earliest copy 09:59:30), m2 (From), m3 (To)
                {"email_address": "bob@acme.com", "from_count": 1, "to_count": 2, "cc_count": 0,
                 "total_count": 3, "first_contact_date": "2001-05-14T09:59:30Z",
                 "latest_contact_date": "2001-06-01T12:00:00Z"},
                # carol is only on jim's copy of m1, so her date is jim's (10:00), not ann's earlier one
                {"email_address": "carol@acme.com", "from_count": 0, "to_count": 1, "cc_count": 0,
                 "total_count": 1, "first_contact_date": "2001-05-14T10:00:00Z",
                 "latest_contact_date": "2001-05-14T10:00:00Z"},
            ],
        },
        "globex.org": {
            "domain": "globex.org",
            "first_contact_date": "2001-05-14T10:00:00Z", "latest_contact_date": "2001-06-01T12:00:00Z",
            "total_from": 1, "total_to": 0, "total_cc": 1, "total_emails": 2,
            "accounts": ["kunai-ann", "kunai-jim"],
            "email_engagements": [
                {"email_address": "dave@globex.org", "from_count": 1, "to_count": 0, "cc_count": 1,
                 "total_count": 2, "first_contact_date": "2001-05-14T10:00:00Z",
                 "latest_contact_date": "2001-06-01T12:00:00Z"},
            ],
        },
    }
    return {"roles": roles, "engagements": engagements, "account_stats": account_stats, "domains": domains}


def test_worked_example_matches_hand_computation() -> None:
    actual = expected_outputs(worked_example_docs(), EVERYTHING, internal_domains=INTERNAL)
    assert actual == worked_example_expected()
    assert_outputs_equal(actual, worked_example_expected())
    assert oracle.summarise(actual) == {"roles": 4, "engagements": 4, "account_stats": 2, "domains": 2}


# --------------------------------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------------------------------


def test_copies_within_an_account_are_one_message() -> None:
    docs = [
        source_doc("c1", "a", "2001-01-02T00:00:00Z", "x@acme.com", ["a@kunaico.com"], message_id="<k1>"),
        source_doc("c2", "a", "2001-01-03T00:00:00Z", "a@kunaico.com", ["x@acme.com"], ["y@acme.com"],
                   message_id="<k1>"),
        # the earliest copy has no valid address, yet it still sets the message's date
        source_doc("c3", "a", "2001-01-01T00:00:00Z", "not-an-address", ["jim@localhost"], message_id="<k1>"),
    ]
    outputs = expected_outputs(docs, EVERYTHING, internal_domains=INTERNAL)
    assert outputs["roles"] == {("a", "<k1>"): {
        "account": "a", "message_id": "<k1>", "date": "2001-01-01T00:00:00Z", "domains": ["acme.com"],
        "message_roles": [
            {"email_address": "x@acme.com", "domain": "acme.com", "role": "From"},
            {"email_address": "x@acme.com", "domain": "acme.com", "role": "To"},
            {"email_address": "y@acme.com", "domain": "acme.com", "role": "CC"},
        ],
    }}
    engagement = outputs["engagements"][("a", "acme.com")]
    assert engagement["emails_from"] == [entry("x@acme.com", 1, "2001-01-01T00:00:00Z")]
    assert engagement["emails_to"] == [entry("x@acme.com", 1, "2001-01-01T00:00:00Z")]
    assert engagement["emails_cc"] == [entry("y@acme.com", 1, "2001-01-01T00:00:00Z")]
    assert engagement["total_count"] == 1
    assert outputs["account_stats"]["a"]["total_emails_count"] == 3
    domain = outputs["domains"]["acme.com"]
    assert domain["total_emails"] == 1
    assert (domain["total_from"], domain["total_to"], domain["total_cc"]) == (1, 1, 1)
    assert domain["email_engagements"][0]["total_count"] == 1


def test_a_message_id_across_accounts_counts_once_per_domain() -> None:
    docs = [
        source_doc("a1", "a", "2001-01-02T10:00:00Z", "x@acme.com", ["y@acme.com"], message_id="<k>"),
        source_doc("b1", "b", "2001-01-02T09:00:00Z", "w@globex.org", [], ["y@acme.com"], message_id="<k>"),
    ]
    outputs = expected_outputs(docs, EVERYTHING)
    acme = outputs["domains"]["acme.com"]
    assert acme["total_emails"] == 1
    assert acme["accounts"] == ["a", "b"]
    x_entry, y_entry = acme["email_engagements"]
    # x is only named by a's copy (10:00); y is named by both, so b's earlier copy (09:00) wins
    assert x_entry == {"email_address": "x@acme.com", "from_count": 1, "to_count": 0, "cc_count": 0,
                       "total_count": 1, "first_contact_date": "2001-01-02T10:00:00Z",
                       "latest_contact_date": "2001-01-02T10:00:00Z"}
    assert y_entry == {"email_address": "y@acme.com", "from_count": 0, "to_count": 1, "cc_count": 1,
                       "total_count": 1, "first_contact_date": "2001-01-02T09:00:00Z",
                       "latest_contact_date": "2001-01-02T09:00:00Z"}
    assert (acme["total_from"], acme["total_to"], acme["total_cc"]) == (1, 1, 1)
    assert acme["first_contact_date"] == "2001-01-02T09:00:00Z"
    assert outputs["domains"]["globex.org"]["accounts"] == ["b"]
    # per account, each mailbox counts its own copy
    assert outputs["engagements"][("a", "acme.com")]["total_count"] == 1
    assert outputs["engagements"][("b", "acme.com")]["total_count"] == 1


def test_message_key_falls_back_to_the_document_id() -> None:
    docs = [
        source_doc("no-id", "a", "2001-01-01T00:00:00Z", "x@acme.com", message_id=None),
        source_doc("empty-id", "a", "2001-01-01T00:00:00Z", "x@acme.com", message_id=""),
        source_doc("odd-id", "a", "2001-01-01T00:00:00Z", "x@acme.com", message_id=" <M@X> "),  # used as stored
    ]
    assert set(expected_outputs(docs, EVERYTHING)["roles"]) == {("a", "no-id"), ("a", "empty-id"), ("a", " <M@X> ")}


# --------------------------------------------------------------------------------------------------
# Domain filters
# --------------------------------------------------------------------------------------------------


def test_internal_and_allowed_domains_filter_every_output() -> None:
    docs = [
        source_doc("m1", "a", "2001-01-01T00:00:00Z", "a@kunaico.com", ["x@acme.com", "y@globex.org"]),
        source_doc("m2", "a", "2001-01-02T00:00:00Z", "y@globex.org", ["a@kunaico.com"]),
        # an account with only internal mail: a zero statistics document and nothing else
        source_doc("m3", "b", "2001-01-03T00:00:00Z", "b@kunaico.com", ["c@kunaico.com"]),
    ]
    outputs = expected_outputs(docs, EVERYTHING, internal_domains=INTERNAL, allowed_domains=("acme.com",))
    assert set(outputs["roles"]) == {("a", "<m1@mail.example.com>")}
    assert outputs["roles"][("a", "<m1@mail.example.com>")]["message_roles"] == [
        {"email_address": "x@acme.com", "domain": "acme.com", "role": "To"}]
    assert set(outputs["engagements"]) == {("a", "acme.com")}
    assert set(outputs["domains"]) == {"acme.com"}
    assert outputs["account_stats"] == {
        "a": {"account": "a", "emails_from_count": 0, "emails_to_count": 1, "emails_cc_count": 0,
              "total_emails_count": 1},
        "b": {"account": "b", "emails_from_count": 0, "emails_to_count": 0, "emails_cc_count": 0,
              "total_emails_count": 0},
    }

    unfiltered = expected_outputs(docs, EVERYTHING)
    assert set(unfiltered["domains"]) == {"acme.com", "globex.org", "kunaico.com"}
    assert unfiltered["account_stats"]["b"]["total_emails_count"] == 2


# --------------------------------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------------------------------


def coverage_docs() -> list[dict]:
    return [
        source_doc(f"{account}-{day}", account, f"2001-01-0{day}T00:00:00Z", "x@acme.com")
        for account in ("a", "b", "c")
        for day in (1, 2, 3)
    ]


def covered(*coverages: Coverage) -> set[str]:
    roles = expected_outputs(coverage_docs(), coverages)["roles"]
    return {message_id.strip("<>").split("@")[0] for _, message_id in roles}


def day(number: int) -> datetime:
    return datetime(2001, 1, number, tzinfo=UTC)


def test_window_start_is_exclusive_and_window_end_inclusive() -> None:
    assert covered(Coverage(window_start=day(1), window_end=day(2))) == {"a-2", "b-2", "c-2"}


def test_from_date_is_inclusive_and_replaces_window_start() -> None:
    coverage = Coverage(window_start=day(2), from_date=day(1), window_end=day(2))
    assert covered(coverage) == {"a-1", "a-2", "b-1", "b-2", "c-1", "c-2"}


def test_account_filters() -> None:
    end = day(3)
    assert covered(Coverage(window_end=end, accounts=frozenset({"a", "b"}), exclude_accounts=frozenset({"b"}))) == {
        "a-1", "a-2", "a-3"}
    assert covered(Coverage(window_end=end, exclude_accounts=frozenset({"a"}))) == {
        "b-1", "b-2", "b-3", "c-1", "c-2", "c-3"}


def test_a_document_is_covered_by_any_coverage() -> None:
    first = Coverage(window_end=day(1))
    backfill = Coverage(window_end=day(3), accounts=frozenset({"c"}))
    assert covered(first, backfill) == {"a-1", "b-1", "c-1", "c-2", "c-3"}


def test_naive_datetimes_are_utc() -> None:
    docs = [source_doc("late", "a", "2001-01-01T23:30:00", "x@acme.com")]  # no zone: 23:30 UTC
    assert expected_outputs(docs, [Coverage(window_end=datetime(2001, 1, 1, 23, 0))])["roles"] == {}
    assert len(expected_outputs(docs, [Coverage(window_end=datetime(2001, 1, 1, 23, 30))])["roles"]) == 1
    # the same instant written with another offset is covered the same way
    offset_docs = [source_doc("late", "a", "2001-01-02T01:30:00+02:00", "x@acme.com")]
    assert len(expected_outputs(offset_docs, [Coverage(window_end=datetime(2001, 1, 1, 23, 30))])["roles"]) == 1


def test_documents_without_a_usable_date_or_account_count_for_nothing() -> None:
    docs = [
        source_doc("d1", "a", None, "x@acme.com"),
        source_doc("d2", "a", "not a date", "x@acme.com"),
        source_doc("d3", None, "2001-01-01T00:00:00Z", "x@acme.com"),
    ]
    assert expected_outputs(docs, EVERYTHING) == {"roles": {}, "engagements": {}, "account_stats": {}, "domains": {}}


# --------------------------------------------------------------------------------------------------
# Comparison helpers
# --------------------------------------------------------------------------------------------------


def test_assert_outputs_equal_reports_readable_differences() -> None:
    expected = worked_example_expected()
    actual = worked_example_expected()
    del actual["roles"][("kunai-jim", "<m2@x>")]
    actual["account_stats"]["kunai-zed"] = {"account": "kunai-zed"}
    actual["domains"]["acme.com"]["total_to"] = 4
    actual["domains"]["acme.com"]["email_engagements"][1]["to_count"] = 7
    with pytest.raises(AssertionError) as failure:
        assert_outputs_equal(actual, expected)
    message = str(failure.value)
    assert "roles: expected 4, actual 3; missing 1, unexpected 0, differing 0" in message
    assert "account_stats: expected 2, actual 3; missing 0, unexpected 1, differing 0" in message
    assert "domains: expected 2, actual 2; missing 0, unexpected 0, differing 1" in message
    assert "total_to: expected 3, got 4" in message
    assert "email_engagements[carol@acme.com].to_count: expected 1, got 7" in message
    assert "engagements:" not in message


def test_read_outputs_reads_back_and_rejects_duplicated_keys(es) -> None:
    names = {"roles": "t-roles", "engagements": "t-engagements", "account_stats": "t-stats", "domains": "t-domains"}
    expected = worked_example_expected()
    for kind, documents in expected.items():
        for number, document in enumerate(documents.values()):
            body = dict(document, updated_at="2024-01-01T00:00:00Z", extra_field=1)
            es.index(index=names[kind], id=f"{kind}-{number}", document=body)
    assert_outputs_equal(oracle.read_outputs(es, names), expected)

    es.index(index="t-stats", id="a-second-copy", document=expected["account_stats"]["kunai-jim"])
    with pytest.raises(AssertionError, match="duplicated natural key"):
        oracle.read_outputs(es, names)


def test_read_outputs_treats_a_missing_index_as_empty(es) -> None:
    names = {"roles": "none-1", "engagements": "none-2", "account_stats": "none-3", "domains": "none-4"}
    assert oracle.summarise(oracle.read_outputs(es, names)) == {
        "roles": 0, "engagements": 0, "account_stats": 0, "domains": 0}


# --------------------------------------------------------------------------------------------------
# The synthetic corpus generator
# --------------------------------------------------------------------------------------------------

SMALL = CorpusSpec(seed=3, messages=300, accounts=4, dirt=0.2, cross_account_duplicate_rate=0.1,
                   within_account_duplicate_rate=0.1)


def address_entries(source: dict) -> list[tuple[str, Any]]:
    """(role field, raw entry) for every address entry of a source document."""
    entries = []
    for field_name in ("from", "to", "cc"):
        value = source.get(field_name, {}).get("address")
        if value is None:
            continue
        entries += [(field_name, item) for item in (value if isinstance(value, list) else [value])]
    return entries


def test_iter_corpus_is_deterministic_for_a_seed() -> None:
    first = list(iter_corpus(SMALL))
    assert first == list(iter_corpus(SMALL))
    assert first != list(iter_corpus(CorpusSpec(**{**SMALL.__dict__, "seed": 4})))
    assert len({document["_id"] for document in first}) == len(first)


def test_iter_corpus_streams() -> None:
    assert inspect.isgenerator(iter_corpus(SMALL))
    # a practically endless corpus still hands over its first document at once
    assert "_source" in next(iter_corpus(CorpusSpec(messages=10**12)))

    def peak_bytes(messages: int) -> int:
        tracemalloc.start()
        for _ in iter_corpus(CorpusSpec(seed=5, messages=messages, dirt=0.1, cross_account_duplicate_rate=0.1)):
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    small, large = peak_bytes(500), peak_bytes(10_000)
    assert large < small * 1.5 + 200_000, (small, large)


def test_clean_corpus_has_the_source_shape() -> None:
    spec = CorpusSpec(seed=11, messages=500, accounts=3)
    documents = list(iter_corpus(spec))
    assert len(documents) == 500  # no duplicates asked for
    assert {document["_source"]["account"] for document in documents} == {"acct-0001", "acct-0002", "acct-0003"}
    for document in documents:
        source = document["_source"]
        assert set(source) == {"account", "messageId", "date", "from", "to", "cc", "subject"}
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", source["messageId"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", source["date"])
        assert spec.start <= parse_date(source["date"]) < spec.end
        assert isinstance(source["from"]["address"], str) and source["to"]["address"]
        for _, raw in address_entries(source):
            assert normalise_address(raw) == raw  # clean means already normalised
        owner = f"{source['account']}@kunaico.com"
        assert owner in [raw for _, raw in address_entries(source)]  # the mailbox is on its own mail


@pytest.mark.parametrize("share", [0.0, 0.5, 0.8])
def test_heavy_domain_share_is_honoured(share: float) -> None:
    spec = CorpusSpec(seed=21, messages=3_000, heavy_domain_share=share, large_list_rate=0.0)
    outside = [
        raw.split("@")[1]
        for document in iter_corpus(spec)
        for _, raw in address_entries(document["_source"])
        if not raw.endswith("@kunaico.com")
    ]
    measured = outside.count("gmail.com") / len(outside)
    assert abs(measured - share) < 0.03, measured


def test_domain_popularity_is_skewed() -> None:
    counts: dict[str, int] = defaultdict(int)
    for document in iter_corpus(CorpusSpec(seed=2, messages=3_000, correspondent_domains=30)):
        for _, raw in address_entries(document["_source"]):
            counts[raw.split("@")[1]] += 1
    counts.pop("kunaico.com")
    ranked = sorted(counts.values(), reverse=True)
    assert len(ranked) > 20 and ranked[0] > 5 * ranked[-1]


def test_duplicate_rates_produce_duplicates() -> None:
    accounts_by_id: dict[str, list[str]] = defaultdict(list)
    for document in iter_corpus(SMALL):
        message_id = document["_source"].get("messageId")
        if message_id:
            accounts_by_id[message_id].append(document["_source"]["account"])
    across = [accounts for accounts in accounts_by_id.values() if len(set(accounts)) > 1]
    within = [accounts for accounts in accounts_by_id.values() if len(accounts) > len(set(accounts))]
    assert 10 < len(across) < 60 and 10 < len(within) < 60


# --- dirty_corpus: every kind of dirt is there ----------------------------------------------------


@pytest.fixture(scope="module")
def dirty() -> list[dict]:
    return dirty_corpus()


def raw_addresses(documents: list[dict]) -> list[Any]:
    return [raw for document in documents for _, raw in address_entries(document["_source"])]


def test_dirty_corpus_is_deterministic_and_small(dirty: list[dict]) -> None:
    assert dirty == dirty_corpus()
    assert dirty != dirty_corpus(seed=8)
    assert 550 <= len(dirty) <= 650
    assert len({document["_source"]["account"] for document in dirty}) == 6


ADDRESS_DIRT_CHECKS = {
    "mixed case": lambda raw: raw == raw.strip() and "<" not in raw and raw != raw.lower()
    and normalise_address(raw) is not None,
    "surrounding whitespace": lambda raw: raw != raw.strip() and normalise_address(raw) is not None,
    "angle brackets": lambda raw: re.fullmatch(r"<[^<>\s]+@[^<>\s]+>", raw) is not None,
    "quoted display name with a comma": lambda raw: re.fullmatch(r'"[^"]*,[^"]*" <[^<>]+>', raw) is not None,
    "plain display name": lambda raw: re.fullmatch(r'[^"<>]+ <[^<>]+>', raw) is not None,
    "unicode address": lambda raw: normalise_address(raw) is not None and not normalise_address(raw).isascii(),
    "unicode display name": lambda raw: "<" in raw and not raw.split("<")[0].isascii(),
    "invalid: no @": lambda raw: "@" not in raw,
    "invalid: two @": lambda raw: raw.count("@") == 2,
    "invalid: no dot in domain": lambda raw: raw.count("@") == 1 and "." not in raw.split("@")[1],
    "invalid: empty local part": lambda raw: raw.startswith("@"),
    "invalid: trailing dot domain": lambda raw: raw.strip().endswith("."),
    "invalid: whitespace inside": lambda raw: " " in raw.strip() and "<" not in raw,
}


@pytest.mark.parametrize("kind", list(ADDRESS_DIRT_CHECKS))
def test_dirty_corpus_has_address_dirt(dirty: list[dict], kind: str) -> None:
    check = ADDRESS_DIRT_CHECKS[kind]
    assert any(isinstance(raw, str) and check(raw) for raw in raw_addresses(dirty)), kind


DOCUMENT_DIRT_CHECKS = {
    "missing to": lambda source: "to" not in source,
    "missing cc": lambda source: "cc" not in source,
    "from as an array of one": lambda source: isinstance(source.get("from", {}).get("address"), list)
    and len(source["from"]["address"]) == 1,
    "missing date": lambda source: "date" not in source,
    "unparseable date": lambda source: source.get("date") == "not a date",
    "date without zone": lambda source: re.fullmatch(r"[\d-]+T[\d:.]+", str(source.get("date"))) is not None,
    "date with another offset": lambda source: re.search(r"[+-]\d\d:\d\d$", str(source.get("date")))
    is not None and not str(source.get("date")).endswith("+00:00"),
    "date with fractions": lambda source: re.search(r"T[\d:]+\.\d+", str(source.get("date"))) is not None,
    "missing messageId": lambda source: "messageId" not in source,
    "only invalid addresses": lambda source: bool(address_entries(source))
    and all(normalise_address(raw) is None for _, raw in address_entries(source)),
    "500 recipients": lambda source: len(source.get("to", {}).get("address", []))
    + len(source.get("cc", {}).get("address", [])) >= 500,
}


@pytest.mark.parametrize("kind", list(DOCUMENT_DIRT_CHECKS))
def test_dirty_corpus_has_document_dirt(dirty: list[dict], kind: str) -> None:
    check = DOCUMENT_DIRT_CHECKS[kind]
    assert any(check(document["_source"]) for document in dirty), kind


def copies_by_message_id(documents: list[dict]) -> dict[str, list[dict]]:
    copies: dict[str, list[dict]] = defaultdict(list)
    for document in documents:
        if document["_source"].get("messageId"):
            copies[document["_source"]["messageId"]].append(document["_source"])
    return copies


def normalised_roles(source: dict) -> set[tuple[str, str]]:
    pairs = {(normalise_address(raw), field_name) for field_name, raw in address_entries(source)}
    return {(address, field_name) for address, field_name in pairs if address is not None}


def test_dirty_corpus_has_within_account_copies_with_other_roles_and_dates(dirty: list[dict]) -> None:
    found = False
    for copies in copies_by_message_id(dirty).values():
        by_account: dict[str, list[dict]] = defaultdict(list)
        for source in copies:
            by_account[source["account"]].append(source)
        for same_account in by_account.values():
            dates = {parse_date(source.get("date")) for source in same_account} - {None}
            roles = {frozenset(normalised_roles(source)) for source in same_account}
            found = found or (len(dates) > 1 and len(roles) > 1)
    assert found


def test_dirty_corpus_has_a_message_id_in_two_accounts_with_different_dates(dirty: list[dict]) -> None:
    assert any(
        len({source["account"] for source in copies}) > 1 and len({source.get("date") for source in copies}) > 1
        for copies in copies_by_message_id(dirty).values()
    )


def test_dirty_corpus_has_identical_timestamps(dirty: list[dict]) -> None:
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for document in dirty:
        source = document["_source"]
        if isinstance(source.get("date"), str) and source.get("messageId"):
            seen[(source["account"], source["date"])].add(source["messageId"])
    assert any(len(message_ids) >= 2 for message_ids in seen.values())


def test_oracle_digests_the_dirty_corpus(dirty: list[dict]) -> None:
    outputs = expected_outputs(dirty, EVERYTHING, internal_domains=INTERNAL)
    counts = oracle.summarise(outputs)
    assert counts["account_stats"] == 6 and counts["domains"] > 10 and counts["roles"] > 400
    assert all(not domain.endswith("kunaico.com") for domain in outputs["domains"])
