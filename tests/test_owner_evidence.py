"""The owner evidence of an hourly run: the stored evidence plus the run's new mail where that is
provably exact, counted over all the account's mail otherwise (docs/SEMANTICS.md, "Conversations")."""

from __future__ import annotations

import re

import pytest
from elasticsearch import helpers

from mailforce.core.conversations import OwnerEvidence, doubtful_addresses, evidence_with_new_mail
from mailforce.core.ids import document_id
from mailforce.es.owners import identify_owners
from oracle import Coverage
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, run, utc

EVERYTHING = Coverage(window_end=FAR_FUTURE_RUN_END)
CUT = "2001-01-31T00:00:00Z"
ME = "me@corp.com"


def mail(number: int, account: str, to: list[str], *, cc: tuple[str, ...] = (), day: int = 1,
         month: int = 1, sender: str = ME, message_id: str | None = None) -> dict:
    return {"_id": f"{account}-{number}", "_source": {
        "account": account, "messageId": message_id or f"<{account}.{number}@corp.com>",
        "date": f"2001-{month:02d}-{day:02d}T10:00:00Z", "from": {"address": sender},
        "to": {"address": to}, "cc": {"address": list(cc)}}}


def stored_mail() -> list[dict]:
    """acct-a: me on 15 messages, alice 6, bob 4, carol 3, dave 2 (the stored top three: me, alice,
    bob); acct-few: two addresses only, so no other address was ever on its mail."""
    people = ["alice@acme.com"] * 6 + ["bob@beta.com"] * 4 + ["carol@gamma.com"] * 3 + ["dave@delta.com"] * 2
    documents = [mail(number, "acct-a", [address], day=1 + number) for number, address in enumerate(people)]
    documents += [mail(number, "acct-few", ["sam@sigma.com"], sender="me2@corp.com", day=3 + number)
                  for number in range(2)]
    return documents


def owner_log(caplog) -> tuple[int, int, int]:
    """(accounts whose evidence added the new mail, addresses in doubt they counted exactly, accounts
    counted over all their mail)."""
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Owner evidence of")]
    assert len(lines) == 1, lines
    added, doubtful, counted = re.search(
        r": ([\d,]+) added .* \(counting ([\d,]+|no) address(?:es)? in doubt exactly\), ([\d,]+) counted over all",
        lines[0]).groups()
    return int(added), 0 if doubtful == "no" else int(doubtful), int(counted)


def statistics(es, settings) -> dict[str, dict]:
    es.indices.refresh(index=settings.account_stats_index)
    return {hit["_id"]: hit["_source"] for hit in helpers.scan(es, index=settings.account_stats_index,
                                                             query={"query": {"match_all": {}}})}


def second_run(es, settings, source: list[dict], new: list[dict], caplog) -> tuple[int, int, int]:
    """The stored mail counted by a first run; then the new mail, counted by an hourly run (logged)."""
    load_source(es, settings, source)
    run(es, settings, "first", run_end=utc(CUT))
    load_source(es, settings, new)
    source.extend(new)
    with caplog.at_level("INFO", logger="mailforce.stages.identify_account_owners"):
        caplog.clear()
        run(es, settings, "second")
    return owner_log(caplog)


def assert_counting_again_changes_nothing(es, settings, run_id: str) -> None:
    """Counting the evidence of the accounts the run identified over all their mail (as the full path
    does, same run) writes byte-identical statistics documents."""
    before = statistics(es, settings)
    identify_owners(es, settings, sorted(document["account"] for document in before.values()
                                         if document["owner_evidence_run_id"] == run_id), run_id)
    assert statistics(es, settings) == before


def test_a_run_of_only_new_mail_adds_it_to_the_stored_evidence_and_equals_the_oracle(es, settings, caplog):
    source = stored_mail()
    # bob overtakes nobody; zed is on one new message: at most 4 + 1 = bob's new 5, and sorts after bob
    new = [mail(100, "acct-a", ["bob@beta.com"], month=2),
           mail(101, "acct-a", ["alice@acme.com"], cc=("zed@zeta.com",), month=2),
           mail(100, "acct-few", ["tom@tau.com"], sender="me2@corp.com", month=2)]

    assert second_run(es, settings, source, new, caplog) == (2, 0, 0)
    expected = assert_matches_oracle(es, settings, source, [EVERYTHING])
    assert expected["account_stats"]["acct-a"]["owner_evidence"] == {"messages": 17, "candidates": [
        {"email_address": ME, "messages": 17}, {"email_address": "alice@acme.com", "messages": 7},
        {"email_address": "bob@beta.com", "messages": 5}]}
    assert [entry["email_address"] for entry in expected["account_stats"]["acct-few"]["owner_evidence"]["candidates"]
            ] == ["me2@corp.com", "sam@sigma.com", "tom@tau.com"]
    stored = es.get(index=settings.account_stats_index, id=document_id("acct-a"))["_source"]
    assert stored["owner_evidence_run_id"] == "second"
    assert_counting_again_changes_nothing(es, settings, "second")


def test_an_address_outside_the_stored_candidates_that_could_overtake_is_counted_exactly(es, settings, caplog):
    source = stored_mail()
    # dave (2 stored, not a candidate) on 3 new messages: 5 overtakes bob's 4, which no stored figure
    # tells (at most 4 + 3): dave's total is counted over all of acct-a's mail
    new = [mail(100 + number, "acct-a", ["dave@delta.com"], month=2, day=1 + number) for number in range(3)]

    assert second_run(es, settings, source, new, caplog) == (1, 1, 0)
    expected = assert_matches_oracle(es, settings, source, [EVERYTHING])
    assert [entry["email_address"] for entry in expected["account_stats"]["acct-a"]["owner_evidence"]["candidates"]
            ] == [ME, "alice@acme.com", "dave@delta.com"]
    assert_counting_again_changes_nothing(es, settings, "second")


def test_a_new_copy_of_a_stored_message_is_counted_over_all_mail(es, settings, caplog):
    source = stored_mail()
    first = source[0]["_source"]
    # a second copy of acct-a's first message, in the same mailbox, naming one more address
    copy = {"_id": "acct-a-copy", "_source": dict(first, cc={"address": ["erin@epsilon.com"]},
                                                  date="2001-02-01T10:00:00Z")}
    new = [copy, mail(100, "acct-few", ["tom@tau.com"], sender="me2@corp.com", month=2)]

    # acct-few only added new mail; acct-a's stored document changed: counted over all its mail
    assert second_run(es, settings, source, new, caplog) == (1, 0, 1)
    assert_matches_oracle(es, settings, source, [EVERYTHING])
    assert_counting_again_changes_nothing(es, settings, "second")


@pytest.mark.parametrize("stored, new_messages, new_counts, doubtful, expected", [
    # fewer than three stored: every other address was on no stored message, its total is its new count
    (OwnerEvidence(2, (("me@x.com", 2), ("sam@y.com", 2))), 2, {"me@x.com": 2, "tom@y.com": 2}, (),
     OwnerEvidence(4, (("me@x.com", 4), ("sam@y.com", 2), ("tom@y.com", 2)))),
    # a candidate's count adds up; an outsider at most 4 + 1 stays below the new third's 6
    (OwnerEvidence(20, (("me@x.com", 20), ("a@y.com", 6), ("b@y.com", 4))), 3,
     {"me@x.com": 3, "b@y.com": 2, "z@y.com": 1}, (),
     OwnerEvidence(23, (("me@x.com", 23), ("a@y.com", 6), ("b@y.com", 6)))),
    # an outsider that could at most tie the new third, sorting after it: the top three are known
    (OwnerEvidence(20, (("me@x.com", 20), ("m@y.com", 6), ("n@y.com", 4))), 1,
     {"me@x.com": 1, "n@y.com": 1, "z@y.com": 1}, (),
     OwnerEvidence(21, (("me@x.com", 21), ("m@y.com", 6), ("n@y.com", 5)))),
    # the same tie with an outsider sorting before the third: in doubt (counted: 5, it takes third place)
    (OwnerEvidence(20, (("me@x.com", 20), ("m@y.com", 6), ("n@y.com", 4))), 1,
     {"me@x.com": 1, "n@y.com": 1, "a@y.com": 1}, ("a@y.com",),
     OwnerEvidence(21, (("me@x.com", 21), ("m@y.com", 6), ("a@y.com", 5)))),
    # an outsider that could beat the third: in doubt (counted: 2, it stays out)
    (OwnerEvidence(20, (("me@x.com", 20), ("m@y.com", 6), ("n@y.com", 4))), 2, {"z@y.com": 2}, ("z@y.com",),
     OwnerEvidence(22, (("me@x.com", 20), ("m@y.com", 6), ("n@y.com", 4)))),
])
def test_the_stored_evidence_plus_new_mail_is_exact_once_the_doubtful_are_counted(
        stored, new_messages, new_counts, doubtful, expected):
    assert doubtful_addresses(stored, new_counts) == doubtful
    counted = {"a@y.com": 5, "z@y.com": 2}
    assert evidence_with_new_mail(stored, new_messages, new_counts, {address: counted[address] for address in doubtful}
                                  ) == expected
