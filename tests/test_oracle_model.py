"""The oracle's model v2 (tests/oracle.py) on tiny hand-made corpora.

Every expected document here is written out by hand from docs/SEMANTICS.md; strengths are worked
out in the comments (see tests/test_strength.py for the formula).
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timezone
from typing import Any

import pytest

import oracle
from oracle import Coverage, assert_outputs_equal, size_violations

# The per-domain documents as they were written by hand before organisations: the organisation
# labels and months are tested by hand in tests/test_organizations.py.
expected_outputs = functools.partial(oracle.expected_outputs, label_organizations=False, label_people=False)

UTC = timezone.utc
INTERNAL = ("kunaico.com",)
SCORING = date(2001, 6, 30)
END = [Coverage(window_end=datetime(2001, 6, 30, 18, 0, tzinfo=UTC))]


def doc(doc_id: str, account: str, message_id: str | None, when: Any, sender: Any = None,
        to: list | None = None, cc: list | None = None, **headers: Any) -> dict:
    source: dict[str, Any] = {"account": account}
    if message_id is not None:
        source["messageId"] = message_id
    if when is not None:
        source["date"] = when
    if sender is not None:
        source["from"] = {"address": sender}
    if to is not None:
        source["to"] = {"address": to}
    if cc is not None:
        source["cc"] = {"address": cc}
    source.update(headers)
    return {"_id": doc_id, "_source": source}


# --------------------------------------------------------------------------------------------------
# Corpus 1: three mailboxes, one key seen in two months, one copy with only internal addresses
# --------------------------------------------------------------------------------------------------


def corpus_one() -> list[dict]:
    return [
        {"_id": "d1", "_source": {"account": "jim", "messageId": "<m1@x>", "date": "2001-05-31T23:30:00Z",
                                  "from": {"address": "jim@kunaico.com"}, "to": {"address": ["bob@acme.com"]},
                                  "cc": {"address": ["carol@acme.com"]}}},
        # ann's copy of m1 is an hour later (next month) and names dave, whom jim's copy does not name
        {"_id": "d2", "_source": {"account": "ann", "messageId": "<m1@x>", "date": "2001-06-01T01:00:00Z",
                                  "from": {"address": "jim@kunaico.com"},
                                  "to": {"address": ["bob@acme.com", "dave@globex.org"]}}},
        {"_id": "d3", "_source": {"account": "jim", "messageId": "<m2@x>", "date": "2001-06-10T09:00:00Z",
                                  "from": {"address": "Bob <BOB@acme.com>"}, "to": {"address": ["jim@kunaico.com"]},
                                  "cc": {"address": ["carol@acme.com"]}}},
        {"_id": "d4", "_source": {"account": "ann", "messageId": "<m3@x>", "date": "2001-06-20T12:00:00Z",
                                  "from": {"address": "dave@globex.org"}, "to": {"address": ["ann@kunaico.com"]},
                                  "cc": {"address": ["bob@acme.com"]}}},
        # ken's copy of m3 is earlier and names only dave: m3's date is ken's, for bob too
        {"_id": "d5", "_source": {"account": "ken", "messageId": "<m3@x>", "date": "2001-06-19T08:00:00Z",
                                  "from": {"address": "dave@globex.org"}, "to": {"address": ["ken@kunaico.com"]}}},
        # ken's copy of m2 is the earliest but has only internal addresses: no roles document, no date
        {"_id": "d6", "_source": {"account": "ken", "messageId": "<m2@x>", "date": "2001-05-01T00:00:00Z",
                                  "from": {"address": "ken@kunaico.com"}, "to": {"address": ["jim@kunaico.com"]}}},
    ]


# Each mailbox's own address, by setting (the inference ties on this tiny corpus: no owner inferred).
OWNERS = {"jim": ["jim@kunaico.com"], "ann": ["ann@kunaico.com"], "ken": ["ken@kunaico.com"]}
NO_DIRECT = {"owner": False, "direct_from_count": 0, "direct_to_count": 0, "direct_count": 0, "direct_weight": 0,
             "latest_direct_date": None, "automated_reason": None}


def direct(from_count: int, to_count: int, weight: int, latest: str) -> dict:
    return {**NO_DIRECT, "direct_from_count": from_count, "direct_to_count": to_count,
            "direct_count": from_count + to_count, "direct_weight": weight, "latest_direct_date": latest}


def corpus_one_outputs(**options: Any) -> oracle.Outputs:
    options.setdefault("account_addresses", OWNERS)
    return expected_outputs(corpus_one(), END, INTERNAL, kinds="all", scoring_date=SCORING, **options)


def test_relationships_by_hand() -> None:
    expected = {
        # jim-bob: m1 jim wrote To bob and carol (audience 2: 500,000), m2 bob wrote to jim and carol
        # (500,000); w 1.0, two-way, latest direct 06-10, age 20: 100 * 1 / 6 * 0.5 ** (20/90) = 14.29 -> 14
        ("jim", "bob@acme.com"): {
            "account": "jim", "email_address": "bob@acme.com", "domain": "acme.com",
            "from_count": 1, "to_count": 1, "cc_count": 0, "total_count": 2,
            "first_engagement_date": "2001-05-31T23:30:00Z", "latest_engagement_date": "2001-06-10T09:00:00Z",
            "automated": False, "two_way": True, "strength": 14,
            **direct(1, 1, 1_000_000, "2001-06-10T09:00:00Z"),
        },
        # jim-carol: CC on m1 (jim wrote: 500,000) and m2 (bob wrote: not direct); w 0.5, one-way,
        # age 30: 100 * 0.5 / 5.5 * 0.5 * 0.5 ** (30/90) = 3.61 -> 4
        ("jim", "carol@acme.com"): {
            "account": "jim", "email_address": "carol@acme.com", "domain": "acme.com",
            "from_count": 0, "to_count": 0, "cc_count": 2, "total_count": 2,
            "first_engagement_date": "2001-05-31T23:30:00Z", "latest_engagement_date": "2001-06-10T09:00:00Z",
            "automated": False, "two_way": False, "strength": 4,
            **direct(0, 1, 500_000, "2001-05-31T23:30:00Z"),
        },
        # ann-bob: m1 (jim wrote) and m3 (dave wrote): ann never exchanged with bob directly -> 0
        ("ann", "bob@acme.com"): {
            "account": "ann", "email_address": "bob@acme.com", "domain": "acme.com",
            "from_count": 0, "to_count": 1, "cc_count": 1, "total_count": 2,
            "first_engagement_date": "2001-06-01T01:00:00Z", "latest_engagement_date": "2001-06-20T12:00:00Z",
            "automated": False, "two_way": False, "strength": 0, **NO_DIRECT,
        },
        # ann-dave: m3 dave wrote to ann, bob CC (audience 2: 500,000); w 0.5, one-way, age 10:
        # 100 * 0.5 / 5.5 * 0.5 * 0.5 ** (10/90) = 4.21 -> 4
        ("ann", "dave@globex.org"): {
            "account": "ann", "email_address": "dave@globex.org", "domain": "globex.org",
            "from_count": 1, "to_count": 1, "cc_count": 0, "total_count": 2,
            "first_engagement_date": "2001-06-01T01:00:00Z", "latest_engagement_date": "2001-06-20T12:00:00Z",
            "automated": False, "two_way": True, "strength": 4,
            **direct(1, 0, 500_000, "2001-06-20T12:00:00Z"),
        },
        # ken-dave: m3 dave wrote to ken alone (ken's date 06-19; 1,000,000); w 1, one-way, age 11: 7.66 -> 8
        ("ken", "dave@globex.org"): {
            "account": "ken", "email_address": "dave@globex.org", "domain": "globex.org",
            "from_count": 1, "to_count": 0, "cc_count": 0, "total_count": 1,
            "first_engagement_date": "2001-06-19T08:00:00Z", "latest_engagement_date": "2001-06-19T08:00:00Z",
            "automated": False, "two_way": False, "strength": 8,
            **direct(1, 0, 1_000_000, "2001-06-19T08:00:00Z"),
        },
    }
    assert corpus_one_outputs()["relationships"] == expected


def test_contacts_by_hand() -> None:
    expected = {
        # bob: m1 (To), m2 (From), m3 (CC); m3 dated by ken's copy (06-19), which does not name bob
        "bob@acme.com": {
            "email_address": "bob@acme.com", "domain": "acme.com",
            "from_count": 1, "to_count": 1, "cc_count": 1, "total_count": 3,
            "first_contact_date": "2001-05-31T23:30:00Z", "latest_contact_date": "2001-06-19T08:00:00Z",
            "accounts": ["ann", "jim"], "accounts_count": 2, "automated": False,
            "best_connected_accounts": [
                {"account": "jim", "strength": 14, "total_count": 2},
                {"account": "ann", "strength": 0, "total_count": 2},
            ],
            # jim wrote to bob on m1 (ann's copy of m1 was written by jim, not ann)
            "automated_reason": None, "flagged_by_headers": False, "broadcast_messages": 0, "answered_count": 1,
        },
        "carol@acme.com": {
            "email_address": "carol@acme.com", "domain": "acme.com",
            "from_count": 0, "to_count": 0, "cc_count": 2, "total_count": 2,
            "first_contact_date": "2001-05-31T23:30:00Z", "latest_contact_date": "2001-06-10T09:00:00Z",
            "accounts": ["jim"], "accounts_count": 1, "automated": False,
            "best_connected_accounts": [{"account": "jim", "strength": 4, "total_count": 2}],
            "automated_reason": None, "flagged_by_headers": False, "broadcast_messages": 0, "answered_count": 1,
        },
        # dave is on m1 only in ann's copy (06-01), yet m1's date is jim's earlier one (05-31)
        "dave@globex.org": {
            "email_address": "dave@globex.org", "domain": "globex.org",
            "from_count": 1, "to_count": 1, "cc_count": 0, "total_count": 2,
            "first_contact_date": "2001-05-31T23:30:00Z", "latest_contact_date": "2001-06-19T08:00:00Z",
            "accounts": ["ann", "ken"], "accounts_count": 2, "automated": False,
            "best_connected_accounts": [
                {"account": "ken", "strength": 8, "total_count": 1},
                {"account": "ann", "strength": 4, "total_count": 2},
            ],
            "automated_reason": None, "flagged_by_headers": False, "broadcast_messages": 0, "answered_count": 0,
        },
    }
    assert corpus_one_outputs()["contacts"] == expected


def test_domains_by_hand() -> None:
    bob = {"email_address": "bob@acme.com", "from_count": 1, "to_count": 1, "cc_count": 1, "total_count": 3,
           "first_contact_date": "2001-05-31T23:30:00Z", "latest_contact_date": "2001-06-19T08:00:00Z"}
    carol = {"email_address": "carol@acme.com", "from_count": 0, "to_count": 0, "cc_count": 2, "total_count": 2,
             "first_contact_date": "2001-05-31T23:30:00Z", "latest_contact_date": "2001-06-10T09:00:00Z"}
    dave = {"email_address": "dave@globex.org", "from_count": 1, "to_count": 1, "cc_count": 0, "total_count": 2,
            "first_contact_date": "2001-05-31T23:30:00Z", "latest_contact_date": "2001-06-19T08:00:00Z"}
    expected = {
        "acme.com": {
            "domain": "acme.com",
            "first_contact_date": "2001-05-31T23:30:00Z", "latest_contact_date": "2001-06-19T08:00:00Z",
            "total_from": 1, "total_to": 1, "total_cc": 3, "total_emails": 3,
            "accounts": ["ann", "jim"], "addresses_count": 2,
            "email_engagements": [bob, carol], "email_engagements_complete": True,
            # jim: max(14, 4) over bob and carol, 2 messages (m1, m2); ann: 0, 2 messages (m1, m3)
            "best_connected_accounts": [
                {"account": "jim", "strength": 14, "total_count": 2},
                {"account": "ann", "strength": 0, "total_count": 2},
            ],
        },
        "globex.org": {
            "domain": "globex.org",
            "first_contact_date": "2001-05-31T23:30:00Z", "latest_contact_date": "2001-06-19T08:00:00Z",
            "total_from": 1, "total_to": 1, "total_cc": 0, "total_emails": 2,
            "accounts": ["ann", "ken"], "addresses_count": 1,
            "email_engagements": [dave], "email_engagements_complete": True,
            "best_connected_accounts": [
                {"account": "ken", "strength": 8, "total_count": 1},
                {"account": "ann", "strength": 4, "total_count": 2},
            ],
        },
    }
    assert corpus_one_outputs()["domains"] == expected


def test_timeline_of_both_scopes_by_hand() -> None:
    def domain_month(domain, month, messages, from_count, to_count, cc_count):
        return {"scope": "domain", "domain": domain, "month": month, "messages": messages,
                "from_count": from_count, "to_count": to_count, "cc_count": cc_count}

    def account_month(account, domain, month, messages, from_count, to_count, cc_count):
        return {"scope": "account", "account": account, "domain": domain, "month": month, "messages": messages,
                "from_count": from_count, "to_count": to_count, "cc_count": cc_count}

    may, june = "2001-05-01T00:00:00Z", "2001-06-01T00:00:00Z"
    expected = {
        # Across mailboxes m1 is in May (jim's 05-31T23:30), dave included though only ann's June copy names him
        ("domain", "acme.com", may): domain_month("acme.com", may, 1, 0, 1, 1),  # m1: bob To, carol CC
        ("domain", "globex.org", may): domain_month("globex.org", may, 1, 0, 1, 0),  # m1: dave To
        ("domain", "acme.com", june): domain_month("acme.com", june, 2, 1, 0, 2),  # m2: bob From, carol CC; m3: bob CC
        ("domain", "globex.org", june): domain_month("globex.org", june, 1, 1, 0, 0),  # m3: dave From
        # Per account, each account's own dates: ann's copy of m1 is in June
        ("account", "jim", "acme.com", may): account_month("jim", "acme.com", may, 1, 0, 1, 1),
        ("account", "jim", "acme.com", june): account_month("jim", "acme.com", june, 1, 1, 0, 1),
        ("account", "ann", "acme.com", june): account_month("ann", "acme.com", june, 2, 0, 1, 1),
        ("account", "ann", "globex.org", june): account_month("ann", "globex.org", june, 2, 1, 1, 0),
        ("account", "ken", "globex.org", june): account_month("ken", "globex.org", june, 1, 1, 0, 0),
    }
    assert corpus_one_outputs()["timeline"] == expected


def test_timeline_months_are_utc_months() -> None:
    docs = [
        doc("t1", "jim", "<t1@x>", "2001-07-01T01:00:00+02:00", "bob@acme.com"),  # 2001-06-30T23:00Z: June
        doc("t2", "jim", "<t2@x>", "2001-07-01T00:00:00Z", "bob@acme.com"),  # the first instant of July
        doc("t3", "jim", "<t3@x>", "2001-06-30T23:59:59.999Z", None, ["bob@acme.com"]),  # still June
    ]
    timeline = expected_outputs(docs, [Coverage(window_end=datetime(2001, 8, 1, tzinfo=UTC))],
                                kinds=("timeline",))["timeline"]
    june, july = "2001-06-01T00:00:00Z", "2001-07-01T00:00:00Z"
    assert timeline == {
        ("domain", "acme.com", june): {"scope": "domain", "domain": "acme.com", "month": june, "messages": 2,
                                       "from_count": 1, "to_count": 1, "cc_count": 0},
        ("domain", "acme.com", july): {"scope": "domain", "domain": "acme.com", "month": july, "messages": 1,
                                       "from_count": 1, "to_count": 0, "cc_count": 0},
        ("account", "jim", "acme.com", june): {"scope": "account", "account": "jim", "domain": "acme.com",
                                               "month": june, "messages": 2, "from_count": 1, "to_count": 1,
                                               "cc_count": 0},
        ("account", "jim", "acme.com", july): {"scope": "account", "account": "jim", "domain": "acme.com",
                                               "month": july, "messages": 1, "from_count": 1, "to_count": 0,
                                               "cc_count": 0},
    }


def test_cross_mailbox_date_rule_against_model_v1() -> None:
    v2 = corpus_one_outputs()
    v1 = expected_outputs(corpus_one(), END, INTERNAL)
    assert v1.model == "v1" and v2.model == "v2"
    # v1: dave's date on m1 is the earliest copy naming him (ann's, 06-01); bob's on m3 is ann's (06-20)
    v1_dave = v1["domains"]["globex.org"]["email_engagements"][0]
    assert (v1_dave["first_contact_date"], v1_dave["latest_contact_date"]) == ("2001-06-01T01:00:00Z", "2001-06-19T08:00:00Z")
    v1_bob = v1["domains"]["acme.com"]["email_engagements"][0]
    assert v1_bob["latest_contact_date"] == "2001-06-20T12:00:00Z"
    # v2: the key's earliest copy with a roles document, whoever it names (jim's for m1, ken's for m3)
    assert v2["contacts"]["dave@globex.org"]["first_contact_date"] == "2001-05-31T23:30:00Z"
    assert v2["contacts"]["bob@acme.com"]["latest_contact_date"] == "2001-06-19T08:00:00Z"
    # ken's internal-only copy of m2 (05-01) has no roles document and does not date m2
    assert ("ken", "<m2@x>") not in v2["roles"]
    assert v2["contacts"]["carol@acme.com"]["latest_contact_date"] == "2001-06-10T09:00:00Z"
    assert v2["account_stats"]["ken"] == {"account": "ken", "emails_from_count": 1, "emails_to_count": 0,
                                          "emails_cc_count": 0, "total_emails_count": 1,
                                          # evidence: ken's one message with a roles document (m3)
                                          "owner_addresses": ["ken@kunaico.com"], "owner_source": "setting",
                                          "owner_evidence": {"messages": 1, "candidates": [
                                              {"email_address": "dave@globex.org", "messages": 1},
                                              {"email_address": "ken@kunaico.com", "messages": 1}]}}
    # a copy without any address at all, earlier than every other, does not date m1 either
    undated = doc("d7", "ken", "<m1@x>", "2001-01-01T00:00:00Z", "not-an-address")
    with_undated = expected_outputs(corpus_one() + [undated], END, INTERNAL, kinds="all", scoring_date=SCORING,
                                    account_addresses=OWNERS)
    assert with_undated["contacts"] == v2["contacts"] and with_undated["domains"] == v2["domains"]
    # ...but a copy in the same account with a roles document does: jim's m1 dated by an address-less copy
    early_jim = doc("d8", "jim", "<m1@x>", "2001-04-30T00:00:00Z", "not-an-address")
    earlier = expected_outputs(corpus_one() + [early_jim], END, INTERNAL, kinds="all", scoring_date=SCORING)
    assert earlier["roles"][("jim", "<m1@x>")]["date"] == "2001-04-30T00:00:00Z"
    assert earlier["contacts"]["dave@globex.org"]["first_contact_date"] == "2001-04-30T00:00:00Z"


def test_v2_roles_and_unchanged_kinds() -> None:
    outputs = corpus_one_outputs()
    assert outputs["roles"][("ann", "<m1@x>")] == {
        "account": "ann", "message_id": "<m1@x>", "date": "2001-06-01T01:00:00Z",
        "domains": ["acme.com", "globex.org"],
        "message_roles": [{"email_address": "bob@acme.com", "domain": "acme.com", "role": "To"},
                          {"email_address": "dave@globex.org", "domain": "globex.org", "role": "To"}],
        "from_addresses": [], "to_addresses": ["bob@acme.com", "dave@globex.org"], "cc_addresses": [],
        "automated_addresses": [],
        # who wrote it and to whom, the internal domain included: its audience is 2
        "sender_addresses": ["jim@kunaico.com"], "recipient_addresses": ["bob@acme.com", "dave@globex.org"],
        "participants": ["bob@acme.com", "dave@globex.org", "jim@kunaico.com"], "audience": 2,
    }
    v1 = expected_outputs(corpus_one(), END, INTERNAL)
    assert outputs["engagements"] == v1["engagements"]
    assert {account: {name: document[name] for name in v1["account_stats"][account]}
            for account, document in outputs["account_stats"].items()} == v1["account_stats"]
    assert set(outputs["roles"]) == set(v1["roles"])
    assert set(v1) == set(oracle.V1_KINDS) and set(outputs) == set(oracle.ALL_KINDS)


def test_kinds_selection() -> None:
    only = expected_outputs(corpus_one(), END, INTERNAL, kinds=("contacts", "roles"), scoring_date=SCORING)
    assert list(only) == ["roles", "contacts"] and only.model == "v2"
    assert "from_addresses" in only["roles"][("jim", "<m1@x>")]
    assert set(expected_outputs(corpus_one(), END, INTERNAL, model="v2")) == set(oracle.ALL_KINDS)
    with pytest.raises(ValueError):
        expected_outputs(corpus_one(), END, kinds=("relationships",), model="v1")
    with pytest.raises(ValueError):
        expected_outputs(corpus_one(), END, kinds=("relationship",))


def test_default_scoring_date_is_the_utc_date_of_the_latest_window_end() -> None:
    coverages = [Coverage(window_end=datetime(2001, 6, 25, tzinfo=UTC)),
                 Coverage(window_end=datetime(2001, 7, 1, 1, 0, tzinfo=timezone.utc).astimezone(
                     timezone(__import__("datetime").timedelta(hours=2))), accounts=frozenset({"ann"}))]
    # 2001-07-01T01:00 UTC -> scoring date 2001-07-01; jim-bob: age 21: 100 * 1 / 6 * 0.5 ** (21/90) = 14.2 -> 14
    relationships = expected_outputs(corpus_one(), coverages, INTERNAL, kinds=("relationships",),
                                     account_addresses=OWNERS)["relationships"]
    later = expected_outputs(corpus_one(), coverages[:1], INTERNAL, kinds=("relationships",),
                             account_addresses=OWNERS)["relationships"]
    assert relationships != later  # scored at the latest window end's date, not an earlier one
    assert relationships[("jim", "bob@acme.com")]["strength"] == 14
    # ken-dave, age 12: 100 * 1 / 6 * 0.5 * 0.5 ** (12/90) = 7.60 -> 8
    assert relationships[("ken", "dave@globex.org")]["strength"] == 8
    # a datetime scoring date counts by its UTC date; half-life setting: ken-dave age 11, half-life 10:
    # 8.333 * 0.5 ** 1.1 = 3.89 -> 4
    halved = expected_outputs(corpus_one(), END, INTERNAL, kinds=("relationships",), half_life_days=10,
                              scoring_date=datetime(2001, 6, 30, 23, 0, tzinfo=UTC),
                              account_addresses=OWNERS)["relationships"]
    assert halved[("ken", "dave@globex.org")]["strength"] == 4


# --------------------------------------------------------------------------------------------------
# Domains: top-N with ties, best connected accounts
# --------------------------------------------------------------------------------------------------


def top_n_corpus() -> list[dict]:
    return [
        doc("n1", "jim", "<n1@x>", "2001-06-28T10:00:00Z", "zed@acme.com", ["jim@kunaico.com"]),
        doc("n2", "jim", "<n2@x>", "2001-06-29T10:00:00Z", "zed@acme.com", ["jim@kunaico.com"],
            ["bea@acme.com", "amy@acme.com"]),
        doc("n3", "jim", "<n3@x>", "2001-06-30T10:00:00Z", "jim@kunaico.com",
            ["cat@acme.com", "bea@acme.com", "amy@acme.com", "zed@acme.com"]),
    ]


def test_domain_top_addresses_with_ties_by_address() -> None:
    domains = expected_outputs(top_n_corpus(), END, INTERNAL, kinds=("domains",), top_addresses=2,
                               scoring_date=SCORING, account_addresses={"jim": ["jim@kunaico.com"]})["domains"]
    assert domains == {
        "acme.com": {
            "domain": "acme.com",
            "first_contact_date": "2001-06-28T10:00:00Z", "latest_contact_date": "2001-06-30T10:00:00Z",
            "total_from": 2, "total_to": 4, "total_cc": 2, "total_emails": 3,
            "accounts": ["jim"], "addresses_count": 4,
            # zed 3 messages; amy and bea 2 each (amy first by address); bea and cat left out
            "email_engagements": [
                {"email_address": "zed@acme.com", "from_count": 2, "to_count": 1, "cc_count": 0, "total_count": 3,
                 "first_contact_date": "2001-06-28T10:00:00Z", "latest_contact_date": "2001-06-30T10:00:00Z"},
                {"email_address": "amy@acme.com", "from_count": 0, "to_count": 1, "cc_count": 1, "total_count": 2,
                 "first_contact_date": "2001-06-29T10:00:00Z", "latest_contact_date": "2001-06-30T10:00:00Z"},
            ],
            "email_engagements_complete": False,
            # jim's best: zed wrote to jim alone (1,000,000), to jim and two more (333,333), jim wrote to
            # zed and three more (250,000): w 1.583333, two-way, age 0: 100 * 1.583333 / 6.583333 = 24.05
            # -> 24; 3 messages
            "best_connected_accounts": [{"account": "jim", "strength": 24, "total_count": 3}],
        },
    }
    complete = expected_outputs(top_n_corpus(), END, INTERNAL, kinds=("domains",), top_addresses=4,
                                scoring_date=SCORING)["domains"]["acme.com"]
    assert [entry["email_address"] for entry in complete["email_engagements"]] == [
        "zed@acme.com", "amy@acme.com", "bea@acme.com", "cat@acme.com"]
    assert complete["email_engagements_complete"] is True


def test_best_connected_accounts_ties_and_limit() -> None:
    # noreply@ is automated: strength 0 everywhere, so the order is total_count desc, then account
    docs = [doc(f"b{number}", f"acc-{number}", f"<b{number}@x>", "2001-06-10T00:00:00Z", "noreply@news.example.com")
            for number in range(1, 7)]
    docs.append(doc("b7", "acc-6", "<b7@x>", "2001-06-11T00:00:00Z", "noreply@news.example.com"))
    docs.append(doc("b8", "acc-3", "<b8@x>", "2001-06-12T00:00:00Z", None, ["noreply@news.example.com"]))
    outputs = expected_outputs(docs, END, kinds="all", scoring_date=SCORING)
    expected_ranking = [
        {"account": "acc-3", "strength": 0, "total_count": 2},
        {"account": "acc-6", "strength": 0, "total_count": 2},
        {"account": "acc-1", "strength": 0, "total_count": 1},
        {"account": "acc-2", "strength": 0, "total_count": 1},
        {"account": "acc-4", "strength": 0, "total_count": 1},
    ]
    contact = outputs["contacts"]["noreply@news.example.com"]
    assert contact["best_connected_accounts"] == expected_ranking
    assert contact["accounts_count"] == 6 and contact["automated"] is True and contact["total_count"] == 8
    assert outputs["domains"]["news.example.com"]["best_connected_accounts"] == expected_ranking
    assert outputs["relationships"][("acc-3", "noreply@news.example.com")]["two_way"] is True


# --------------------------------------------------------------------------------------------------
# Automated addresses
# --------------------------------------------------------------------------------------------------


def automated_corpus() -> list[dict]:
    return [
        doc("a1", "jim", "<a1@x>", "2001-06-01T00:00:00Z", "No-Reply <no-reply@shop.example.com>", ["jim@kunaico.com"]),
        doc("a2", "jim", "<a2@x>", "2001-06-02T00:00:00Z", "news@acme.com", ["jim@kunaico.com"],
            list_unsubscribe="<mailto:unsub@acme.com>"),
        doc("a3", "ann", "<a3@x>", "2001-06-03T00:00:00Z", "bot@globex.org", ["ann@kunaico.com", "pat@globex.org"],
            auto_submitted="Auto-Replied"),
        doc("a4", "ann", "<a4@x>", "2001-06-04T00:00:00Z", "sue@initech.com", ["ann@kunaico.com"], precedence="BULK"),
        doc("a5", "jim", "<a5@x>", "2001-06-05T00:00:00Z", "joe@initech.com",
            ["announce@lists.acme.com", "jim@kunaico.com"], ["ops@acme.com"],
            list_id="Announcements <Announce.Lists.Acme.com>"),
        doc("a6", "ann", "<a6@x>", "2001-06-06T00:00:00Z", "joe@initech.com", ["ann@kunaico.com"],
            auto_submitted="No", precedence="first-class", list_unsubscribe="  "),
        # news@ holds no header here, in another mailbox: still automated (the flag is the address's)
        doc("a7", "ken", "<a7@x>", "2001-06-07T00:00:00Z", "ken@kunaico.com", ["news@acme.com"]),
    ]


def test_automated_roles_documents() -> None:
    roles = expected_outputs(automated_corpus(), END, INTERNAL, kinds=("roles",))["roles"]

    def roles_doc(account, key, when, from_, to, cc, automated, senders=None, recipients=()):
        pairs = sorted([(address, "From") for address in from_] + [(address, "To") for address in to]
                       + [(address, "CC") for address in cc])
        senders = from_ if senders is None else senders  # the internal addresses are not in the roles
        recipients = sorted([*to, *cc, *recipients])
        return {
            "account": account, "message_id": key, "date": when,
            "domains": sorted({address.split("@")[1] for address, _ in pairs}),
            "message_roles": [{"email_address": address, "domain": address.split("@")[1], "role": role}
                              for address, role in pairs],
            "from_addresses": from_, "to_addresses": to, "cc_addresses": cc, "automated_addresses": automated,
            "sender_addresses": senders, "recipient_addresses": recipients,
            "participants": sorted({*senders, *recipients}), "audience": len(recipients),
        }

    assert roles == {
        # a pattern flags the address, not the message: automated_addresses lists header flags only
        ("jim", "<a1@x>"): roles_doc("jim", "<a1@x>", "2001-06-01T00:00:00Z", ["no-reply@shop.example.com"], [], [], [],
                                     recipients=["jim@kunaico.com"]),
        ("jim", "<a2@x>"): roles_doc("jim", "<a2@x>", "2001-06-02T00:00:00Z", ["news@acme.com"], [], [], ["news@acme.com"],
                                     recipients=["jim@kunaico.com"]),
        ("ann", "<a3@x>"): roles_doc("ann", "<a3@x>", "2001-06-03T00:00:00Z", ["bot@globex.org"], ["pat@globex.org"], [],
                                     ["bot@globex.org"], recipients=["ann@kunaico.com"]),
        ("ann", "<a4@x>"): roles_doc("ann", "<a4@x>", "2001-06-04T00:00:00Z", ["sue@initech.com"], [], [], ["sue@initech.com"],
                                     recipients=["ann@kunaico.com"]),
        ("jim", "<a5@x>"): roles_doc("jim", "<a5@x>", "2001-06-05T00:00:00Z", ["joe@initech.com"],
                                     ["announce@lists.acme.com"], ["ops@acme.com"], ["announce@lists.acme.com"],
                                     recipients=["jim@kunaico.com"]),
        ("ann", "<a6@x>"): roles_doc("ann", "<a6@x>", "2001-06-06T00:00:00Z", ["joe@initech.com"], [], [], [],
                                     recipients=["ann@kunaico.com"]),
        ("ken", "<a7@x>"): roles_doc("ken", "<a7@x>", "2001-06-07T00:00:00Z", [], ["news@acme.com"], [], [],
                                     senders=["ken@kunaico.com"]),
    }


def test_automated_relationships_and_contacts() -> None:
    outputs = expected_outputs(automated_corpus(), END, INTERNAL, kinds="all", scoring_date=SCORING)
    assert {key: (document["automated"], document["strength"]) for key, document in outputs["relationships"].items()} == {
        ("jim", "no-reply@shop.example.com"): (True, 0),  # pattern no-?reply
        ("jim", "news@acme.com"): (True, 0),  # list_unsubscribe on From
        ("ken", "news@acme.com"): (True, 0),  # flagged in jim's mailbox
        ("ann", "bot@globex.org"): (True, 0),  # auto_submitted other than no
        ("ann", "pat@globex.org"): (False, 0),  # To on that message, written by the bot: no direct exchange
        ("ann", "sue@initech.com"): (True, 0),  # precedence bulk (case-insensitive)
        # From on a list message is not the list; wrote to jim and two more (333,333), one-way, age 25:
        # 100 * 0.333333 / 5.333333 * 0.5 * 0.5 ** (25/90) = 2.58 -> 3
        ("jim", "joe@initech.com"): (False, 3),
        ("jim", "announce@lists.acme.com"): (True, 0),  # To equal to the list id
        ("jim", "ops@acme.com"): (False, 0),  # CC, not the list; joe wrote it, not jim: no direct exchange
        # auto_submitted no, precedence first-class, blank unsubscribe; wrote to ann alone, one-way, age 24:
        # 100 * 1 / 6 * 0.5 * 0.5 ** (24/90) = 6.93 -> 7
        ("ann", "joe@initech.com"): (False, 7),
    }
    assert {address: document["automated"] for address, document in outputs["contacts"].items()} == {
        "no-reply@shop.example.com": True, "news@acme.com": True, "bot@globex.org": True, "pat@globex.org": False,
        "sue@initech.com": True, "joe@initech.com": False, "announce@lists.acme.com": True, "ops@acme.com": False,
    }
    # flagged addresses are still counted
    assert outputs["contacts"]["news@acme.com"]["total_count"] == 2
    assert outputs["domains"]["acme.com"]["total_emails"] == 3


def test_automated_pattern_settings() -> None:
    extra = expected_outputs(automated_corpus(), END, INTERNAL, kinds=("contacts",),
                             automated_patterns_extra=(r"^ops$",))["contacts"]
    assert extra["ops@acme.com"]["automated"] is True and extra["no-reply@shop.example.com"]["automated"] is True
    replaced = expected_outputs(automated_corpus(), END, INTERNAL, kinds=("contacts",),
                                automated_patterns=(r"^joe$",))["contacts"]
    assert replaced["no-reply@shop.example.com"]["automated"] is False  # the defaults are replaced
    assert replaced["joe@initech.com"]["automated"] is True
    assert replaced["news@acme.com"]["automated"] is True  # headers still flag


@pytest.mark.parametrize(("local_part", "automated"), [
    ("noreply", True), ("no-reply", True), ("do-not-reply", True), ("donotreply", True),
    ("mailer-daemon", True), ("postmaster", True), ("postmaster2", False), ("notification", True),
    ("notifications", True), ("my-notifications", False), ("bounce", True), ("bounces+abc", True),
    ("bounce.x", True), ("bouncer", False), ("list-bounces", True), ("newsletter", True),
    ("listserv", True), ("majordomo", True), ("dev-request", True), ("owner-dev", True), ("dev-owner", True),
    ("owner", False), ("jim", False), ("replyno", False),
])
def test_default_automated_patterns(local_part: str, automated: bool) -> None:
    assert oracle.is_automated_local_part(f"{local_part}@acme.com") is automated


# --------------------------------------------------------------------------------------------------
# Erasure
# --------------------------------------------------------------------------------------------------


def erasure_corpus() -> list[dict]:
    return [
        doc("e1", "jim", "<e1@x>", "2001-06-01T00:00:00Z", "bob@acme.com", ["jim@kunaico.com"], ["eve@acme.com"]),
        # jim's copy of e2 names only eve: erased, it has no roles document and no longer dates e2
        doc("e2", "jim", "<e2@x>", "2001-05-20T00:00:00Z", "eve@acme.com", ["jim@kunaico.com"]),
        doc("e3", "ann", "<e2@x>", "2001-06-03T00:00:00Z", "eve@acme.com", ["ann@kunaico.com"], ["bob@acme.com"]),
        doc("e4", "ann", "<e4@x>", "2001-06-04T00:00:00Z", "x@spam.example.net", ["ann@kunaico.com"]),
        doc("e5", "ken", "<e5@x>", "2001-06-05T00:00:00Z", "y@spam.example.net", ["ken@kunaico.com"]),
    ]


def test_erasure_of_an_address_and_a_domain() -> None:
    outputs = expected_outputs(erasure_corpus(), END, INTERNAL, kinds="all", scoring_date=SCORING,
                               erased_addresses=("Eve <EVE@acme.com>",), erased_domains=("spam.example.net",),
                               account_addresses=OWNERS)
    assert set(outputs["roles"]) == {("jim", "<e1@x>"), ("ann", "<e2@x>")}
    assert outputs["roles"][("ann", "<e2@x>")]["message_roles"] == [
        {"email_address": "bob@acme.com", "domain": "acme.com", "role": "CC"}]
    assert {account: {name: document[name] for name in oracle.DOCUMENT_FIELDS["account_stats"]}
            for account, document in outputs["account_stats"].items()} == {
        "jim": {"account": "jim", "emails_from_count": 1, "emails_to_count": 0, "emails_cc_count": 0,
                "total_emails_count": 1},
        "ann": {"account": "ann", "emails_from_count": 0, "emails_to_count": 0, "emails_cc_count": 1,
                "total_emails_count": 1},
        "ken": {"account": "ken", "emails_from_count": 0, "emails_to_count": 0, "emails_cc_count": 0,
                "total_emails_count": 0},
    }
    assert outputs["contacts"] == {
        # e2 is dated by ann's copy (06-03): jim's 05-20 copy named only eve
        "bob@acme.com": {
            "email_address": "bob@acme.com", "domain": "acme.com",
            "from_count": 1, "to_count": 0, "cc_count": 1, "total_count": 2,
            "first_contact_date": "2001-06-01T00:00:00Z", "latest_contact_date": "2001-06-03T00:00:00Z",
            "accounts": ["ann", "jim"], "accounts_count": 2, "automated": False,
            # jim: bob wrote to jim alone (eve, CC, erased: audience 1), one-way, age 29: 6.67 -> 7;
            # ann: eve wrote e2 (erased): no direct exchange, 0
            "best_connected_accounts": [{"account": "jim", "strength": 7, "total_count": 1},
                                        {"account": "ann", "strength": 0, "total_count": 1}],
            "automated_reason": None, "flagged_by_headers": False, "broadcast_messages": 0, "answered_count": 0,
        },
    }
    assert set(outputs["domains"]) == {"acme.com"}
    assert outputs["domains"]["acme.com"]["addresses_count"] == 1
    assert outputs["domains"]["acme.com"]["total_emails"] == 2
    assert set(outputs["relationships"]) == {("jim", "bob@acme.com"), ("ann", "bob@acme.com")}
    assert outputs["timeline"] == {
        ("domain", "acme.com", "2001-06-01T00:00:00Z"): {
            "scope": "domain", "domain": "acme.com", "month": "2001-06-01T00:00:00Z", "messages": 2,
            "from_count": 1, "to_count": 0, "cc_count": 1},
        ("account", "jim", "acme.com", "2001-06-01T00:00:00Z"): {
            "scope": "account", "account": "jim", "domain": "acme.com", "month": "2001-06-01T00:00:00Z",
            "messages": 1, "from_count": 1, "to_count": 0, "cc_count": 0},
        ("account", "ann", "acme.com", "2001-06-01T00:00:00Z"): {
            "scope": "account", "account": "ann", "domain": "acme.com", "month": "2001-06-01T00:00:00Z",
            "messages": 1, "from_count": 0, "to_count": 0, "cc_count": 1},
    }


def test_erasure_is_what_the_mail_would_give_without_the_address() -> None:
    unerased = expected_outputs(erasure_corpus(), END, INTERNAL, kinds="all", scoring_date=SCORING)
    # without the erasure jim's 05-20 copy of e2 dates it, for bob too
    assert unerased["contacts"]["bob@acme.com"]["first_contact_date"] == "2001-05-20T00:00:00Z"
    erased = expected_outputs(erasure_corpus(), END, INTERNAL, kinds="all", scoring_date=SCORING,
                              erased_domains=("spam.example.net",))
    as_internal = expected_outputs(erasure_corpus(), END, INTERNAL + ("spam.example.net",), kinds="all",
                                   scoring_date=SCORING)
    assert erased == as_internal
    def addresses(value):
        return value if isinstance(value, list) else [value]

    without_eve = [
        {"_id": d["_id"], "_source": {**d["_source"], **{
            name: {"address": [a for a in addresses(d["_source"][name]["address"]) if a != "eve@acme.com"]}
            for name in ("from", "to", "cc") if name in d["_source"]}}}
        for d in erasure_corpus()
    ]
    assert expected_outputs(erasure_corpus(), END, INTERNAL, kinds="all", scoring_date=SCORING,
                            erased_addresses=("eve@acme.com",)) == expected_outputs(
        without_eve, END, INTERNAL, kinds="all", scoring_date=SCORING)


# --------------------------------------------------------------------------------------------------
# Coverage on an ingestion time
# --------------------------------------------------------------------------------------------------


def indexed_corpus() -> list[dict]:
    return [
        doc("i1", "jim", "<i1@x>", "2001-06-01T10:00:00Z", "bob@acme.com", indexed_at="2001-06-01T10:05:00Z"),
        # dated long before run 2's window, indexed inside it: run 2 counts it
        doc("i2", "jim", "<i2@x>", "2001-05-15T00:00:00Z", "bob@acme.com", indexed_at="2001-06-02T00:00:00+00:00"),
        # future-dated (sender's clock), indexed in run 1's window: counted once a window end reaches its date
        doc("i3", "jim", "<i3@x>", "2001-07-01T00:00:00Z", "bob@acme.com", indexed_at="2001-06-01T11:00:00Z"),
        # dated inside run 1's window but indexed after every run
        doc("i4", "jim", "<i4@x>", "2001-06-01T11:00:00Z", "bob@acme.com", indexed_at="2001-06-03T00:00:00Z"),
        # no ingestion time: never selected by a window on it
        doc("i5", "jim", "<i5@x>", "2001-06-01T11:00:00Z", "bob@acme.com"),
    ]


def test_coverage_on_indexed_at() -> None:
    run1 = Coverage(field="indexed_at", window_end=datetime(2001, 6, 1, 12, 0, tzinfo=UTC))
    run2 = Coverage(field="indexed_at", window_start=datetime(2001, 6, 1, 12, 0, tzinfo=UTC),
                    window_end=datetime(2001, 6, 2, 12, 0, tzinfo=UTC))

    def keys(coverages):
        return sorted(key for _, key in expected_outputs(indexed_corpus(), coverages)["roles"])

    assert keys([run1]) == ["<i1@x>"]
    assert keys([run1, run2]) == ["<i1@x>", "<i2@x>"]
    reached = Coverage(field="indexed_at", window_end=datetime(2001, 7, 1, tzinfo=UTC))  # inclusive end
    assert keys([reached]) == ["<i1@x>", "<i2@x>", "<i3@x>", "<i4@x>"]
    assert keys([Coverage(field="indexed_at", window_end=datetime(2001, 6, 30, 23, 59, 59, tzinfo=UTC))]) == [
        "<i1@x>", "<i2@x>", "<i4@x>"]
    # the same window on date: i2 is outside it, i4 and i5 inside
    on_date = Coverage(window_start=datetime(2001, 5, 31, tzinfo=UTC), window_end=datetime(2001, 6, 1, 12, 0, tzinfo=UTC))
    assert keys([on_date]) == ["<i1@x>", "<i4@x>", "<i5@x>"]
    # account filters apply as on date windows
    assert keys([Coverage(field="indexed_at", window_end=datetime(2001, 7, 1, tzinfo=UTC),
                          exclude_accounts=frozenset({"jim"}))]) == []


# --------------------------------------------------------------------------------------------------
# Reading back and comparing
# --------------------------------------------------------------------------------------------------

NEW_NAMES = {kind: f"t2-{kind}" for kind in oracle.ALL_KINDS}


def test_read_outputs_reads_the_seven_kinds(es) -> None:
    expected = corpus_one_outputs()
    for kind, documents in expected.items():
        for number, document in enumerate(documents.values()):
            body = dict(document, updated_at="2024-01-01T00:00:00Z", extra_field=1)
            es.index(index=NEW_NAMES[kind], id=f"{kind}-{number}", document=body)
    actual = oracle.read_outputs(es, NEW_NAMES)
    assert set(actual) == set(oracle.ALL_KINDS)
    assert set(actual["timeline"]) == set(expected["timeline"])
    assert_outputs_equal(actual, expected)
    # the v1 comparison of the same indices ignores the new kinds and fields, with v1 domain dates
    v1_names = {kind: NEW_NAMES[kind] for kind in oracle.V1_KINDS}
    with pytest.raises(AssertionError, match="domains: expected 2, actual 2; missing 0, unexpected 0, differing 2"):
        assert_outputs_equal(oracle.read_outputs(es, v1_names), expected_outputs(corpus_one(), END, INTERNAL))


def test_rankings_are_compared_in_order() -> None:
    expected = corpus_one_outputs()
    actual = corpus_one_outputs()
    assert_outputs_equal(actual, expected)
    actual["contacts"]["bob@acme.com"]["best_connected_accounts"].reverse()
    entries = actual["domains"]["acme.com"]["email_engagements"]
    entries[0], entries[1] = entries[1], entries[0]
    with pytest.raises(AssertionError) as failure:
        assert_outputs_equal(actual, expected)
    message = str(failure.value)
    assert "contacts: expected 3, actual 3; missing 0, unexpected 0, differing 1" in message
    assert "best_connected_accounts: order expected ['jim', 'ann'], got ['ann', 'jim']" in message
    assert "email_engagements: order expected ['bob@acme.com', 'carol@acme.com']" in message


def test_only_the_expected_kinds_are_compared() -> None:
    expected = expected_outputs(corpus_one(), END, INTERNAL, kinds=("contacts",), scoring_date=SCORING,
                                account_addresses=OWNERS)
    actual = corpus_one_outputs()
    actual["relationships"].clear()
    assert_outputs_equal(actual, expected)
    actual["contacts"]["carol@acme.com"]["automated"] = True
    with pytest.raises(AssertionError, match=r"automated: expected False, got True"):
        assert_outputs_equal(actual, expected)


# --------------------------------------------------------------------------------------------------
# Size limits and speed
# --------------------------------------------------------------------------------------------------


def test_size_violations() -> None:
    small = {"domain": "acme.com", "email_engagements": [{"email_address": f"a{n}@acme.com"} for n in range(10_000)]}
    many = {"domain": "big.com", "email_engagements": [{"email_address": f"a{n}@big.com"} for n in range(10_001)]}
    huge = {"domain": "huge.com", "blob": "x" * (10 * 1024 * 1024)}
    assert size_violations([small, many, huge]) == [(2, len(huge["blob"]) + len('{"domain":"huge.com","blob":""}'), 0, huge)]
    violations = size_violations([small, many, huge], nested_fields=("email_engagements",))
    assert [(violation.position, violation.nested_objects) for violation in violations] == [(1, 10_001), (2, 0)]
    nested_deeper = {"a": {"b": [{"c": [{}, {}]}, {"c": [{}]}]}}
    assert oracle.count_nested_objects(nested_deeper, ("a.b", "a.b.c")) == 5


# The oracle at the size the scale test needs it (tests/test_scale.py): a domain just over the
# nested-objects limit, spread over 20 mailboxes with copies and CCs. How fast the oracle is at
# larger sizes is not asserted (performance is the benchmark's job).
HEAVY_ADDRESSES = oracle.MAX_NESTED_OBJECTS + 1
ACCT_00_ADDRESSES = 2_500  # of them only in acct-00's mail
SCALE_DOCUMENTS = 16_000
RECIPIENTS = 700  # r0..r699@heavy.com, in every mailbox's To


def scale_corpus() -> list[dict]:
    """16,000 documents in 20 mailboxes; heavy.com has 10,701 addresses, 2,500 of them with acct-00."""
    docs = []
    for number in range(SCALE_DOCUMENTS):
        account = f"acct-{number % 20:02d}"
        if number < ACCT_00_ADDRESSES:
            account, sender = "acct-00", f"p{number}@heavy.com"
        elif number < HEAVY_ADDRESSES:
            sender = f"p{number}@heavy.com"
        else:
            sender = f"q{number % 5000}@d{number % 300}.example.com"
        docs.append({"_id": f"s{number}", "_source": {
            "account": account, "messageId": f"<s{number % 14_400}@x>",
            "date": f"2001-{1 + number % 12:02d}-{1 + number % 28:02d}T{number % 24:02d}:00:00Z",
            "from": {"address": sender},
            "to": {"address": [f"{account}@kunaico.com", f"r{number % RECIPIENTS}@heavy.com"]},
            "cc": {"address": [f"c{number % 50}@d{number % 300}.example.com"]},
        }})
    return docs


def test_the_oracle_computes_a_domain_over_the_nested_objects_limit_in_twenty_mailboxes() -> None:
    docs = scale_corpus()
    outputs = expected_outputs(docs, [Coverage(window_end=datetime(2002, 1, 1, tzinfo=UTC))], INTERNAL, kinds="all")
    heavy = outputs["domains"]["heavy.com"]
    assert heavy["addresses_count"] == HEAVY_ADDRESSES + RECIPIENTS  # p0..p10000 and r0..r699
    assert len(heavy["email_engagements"]) == 100 and heavy["email_engagements_complete"] is False
    acct_00 = outputs["engagements"][("acct-00", "heavy.com")]
    assert acct_00["emails_from_count"] >= ACCT_00_ADDRESSES
