"""The per-domain rollups (pure): adding a window's new mail to stored documents equals a
recomputation over all time, on seeded random mail, for every output kind."""

from __future__ import annotations

import random
from datetime import date

import pytest

from mailforce.core.automated import AddressClassifier
from mailforce.core.rollups import (
    KINDS,
    DomainRollup,
    Scoring,
    add_to_stored,
    finished_documents,
    flipped_to_automated,
    missing_from_stored,
    natural_key,
    window_documents,
)

SCORING = Scoring(scoring_date=date(2002, 1, 15), half_life_days=90,
                  is_automated_address=AddressClassifier().is_automated, top_addresses=3)
DOMAINS = ["acme.com", "globex.com", "initech.com"]
ROLES = ["From", "To", "CC"]


def random_mail(rng: random.Random, messages: int) -> list[list[dict]]:
    """Groups of roles documents (copies of one message id across accounts)."""
    groups = []
    for number in range(messages):
        copies = []
        key_date = None
        accounts = rng.sample(["ann", "bob", "cid"], rng.choice([1, 1, 2, 3]))
        for account in accounts:
            day = rng.randint(1, 28)
            message_date = f"2001-{rng.randint(1, 12):02d}-{day:02d}T{rng.randint(0, 23):02d}:00:00Z"
            key_date = message_date if key_date is None else min(key_date, message_date)
            entries = set()
            for _ in range(rng.randint(1, 4)):
                domain = rng.choice(DOMAINS)
                local = rng.choice(["jim", "sue", "no-reply", "kay", "lee", "max"])
                entries.add((f"{local}@{domain}", rng.choice(ROLES)))
            copies.append({
                "account": account, "message_id": f"<m{number}@x>", "date": message_date,
                "message_roles": [{"email_address": a, "domain": a.split("@")[1], "role": r} for a, r in sorted(entries)],
                "automated_addresses": [a for a, r in entries if a.startswith("kay") and rng.random() < 0.05],
            })
        for copy in copies:
            copy["key_date"] = key_date
        groups.append(copies)
    return groups


def rollup_of(groups: list[list[dict]], window_only: bool = False) -> DomainRollup:
    rollup = DomainRollup(DOMAINS, window_only=window_only)
    for copies in groups:
        rollup.add_message(copies)
    return rollup


def keyed(documents) -> dict[str, dict]:
    return {kind: {natural_key(kind, d): d for d in getattr(documents, kind)} for kind in KINDS}


def assert_added_equals_recomputed(new, stored, expected) -> None:
    """The window's figures added to `stored` equal `expected` (a recomputation over all time) for
    every kind, outside the domains that new mail flips to automated (those are recomputed)."""
    flipped = flipped_to_automated(new, stored, SCORING)
    added = keyed(add_to_stored(
        {kind: [d for d in docs if d["domain"] not in flipped] for kind, docs in new.items()}, stored, SCORING))
    for kind in KINDS:
        merged = dict(stored[kind])
        merged.update(added[kind])
        comparable = {key: doc for key, doc in expected[kind].items() if doc["domain"] not in flipped}
        assert {key: doc for key, doc in merged.items() if doc["domain"] not in flipped} == comparable, kind


@pytest.mark.parametrize("seed", range(8))
def test_adding_a_window_to_stored_documents_equals_recomputing_over_all_time(seed):
    rng = random.Random(seed)
    groups = random_mail(rng, 120)
    cut = rng.randint(20, 100)
    stored = keyed(finished_documents(rollup_of(groups[:cut]), SCORING))
    new = window_documents(rollup_of(groups[cut:]))
    assert_added_equals_recomputed(new, stored, keyed(finished_documents(rollup_of(groups), SCORING)))


def hold_back_late_copies(rng: random.Random, groups: list[list[dict]]) -> list[dict]:
    """Make one copy of some multi-mailbox messages a late copy that adds nothing across mailboxes
    (roles a subset of the other copies', dated no earlier than them), marked as the extraction
    marks it; removes it from its group and returns the late copies."""
    late = []
    for copies in groups:
        if len(copies) < 2 or rng.random() < 0.4:
            continue
        copy = copies.pop(rng.randrange(len(copies)))
        union = sorted({(e["email_address"], e["role"]) for other in copies for e in other["message_roles"]})
        kept = rng.sample(union, rng.randint(1, len(union)))
        key_date = min(other["date"] for other in copies)
        copy["date"] = max(copy["date"], key_date)
        copy["message_roles"] = [{"email_address": a, "domain": a.split("@")[1], "role": r} for a, r in sorted(kept)]
        copy["automated_addresses"] = [a for a in copy.get("automated_addresses", ()) if (a, "From") in kept]
        for each in copies + [copy]:
            each["key_date"] = key_date
        copy["counted_elsewhere"] = True
        late.append(copy)
    return late


@pytest.mark.parametrize("seed", range(8))
def test_late_copies_counted_elsewhere_add_to_per_account_figures_only_and_equal_a_recomputation(seed):
    """A window's copies of messages other mailboxes already counted (`counted_elsewhere`) are
    added without recomputing their domains; the result equals a recomputation over all time,
    which ignores the mark."""
    rng = random.Random(100 + seed)
    groups = random_mail(rng, 150)
    cut = rng.randint(60, 120)
    late = hold_back_late_copies(rng, groups[:cut])
    assert late, "the seed must produce late copies"
    stored = keyed(finished_documents(rollup_of(groups[:cut]), SCORING))
    window = groups[cut:] + [[copy] for copy in late]
    new = window_documents(rollup_of(window, window_only=True))
    assert missing_from_stored(new, stored) == set()
    late_of = {copy["message_id"]: copy for copy in late}
    whole = [copies + ([late_of[copies[0]["message_id"]]] if copies[0]["message_id"] in late_of else [])
             for copies in groups]
    assert_added_equals_recomputed(new, stored, keyed(finished_documents(rollup_of(whole), SCORING)))


def test_a_late_copy_whose_contact_is_missing_from_the_store_sends_its_domain_to_recomputation():
    first = [{"account": "ann", "message_id": "<a@x>", "date": "2001-05-02T00:00:00Z", "key_date": "2001-05-02T00:00:00Z",
              "message_roles": [{"email_address": "jim@acme.com", "domain": "acme.com", "role": "To"}]}]
    late = [{**first[0], "account": "bob", "counted_elsewhere": True}]
    new = window_documents(rollup_of([late], window_only=True))
    assert [(c["email_address"], c["total_count"], c["accounts"]) for c in new["contacts"]] == [
        ("jim@acme.com", 0, ["bob"])]
    assert [(r["account"], r["total_count"]) for r in new["relationships"]] == [("bob", 1)]
    assert missing_from_stored(new, keyed(finished_documents(rollup_of([first]), SCORING))) == set()
    assert missing_from_stored(new, {kind: {} for kind in KINDS}) == {"acme.com"}


def test_the_counted_elsewhere_mark_is_ignored_over_all_time():
    copy = {"account": "bob", "message_id": "<a@x>", "date": "2001-05-02T00:00:00Z", "counted_elsewhere": True,
            "message_roles": [{"email_address": "jim@acme.com", "domain": "acme.com", "role": "To"}]}
    documents = finished_documents(rollup_of([[copy]]), SCORING)
    assert [(c["total_count"], c["to_count"]) for c in documents.contacts] == [(1, 1)]
    assert [d["total_emails"] for d in documents.domains] == [1]


def test_a_message_seen_by_two_mailboxes_counts_once_per_contact_and_is_dated_by_its_earliest_copy():
    copies = [
        {"account": "ann", "message_id": "<m@x>", "date": "2001-05-02T00:00:00Z", "key_date": "2001-04-30T00:00:00Z",
         "message_roles": [{"email_address": "jim@acme.com", "domain": "acme.com", "role": "To"}]},
        {"account": "bob", "message_id": "<m@x>", "date": "2001-04-30T00:00:00Z", "key_date": "2001-04-30T00:00:00Z",
         "message_roles": [{"email_address": "jim@acme.com", "domain": "acme.com", "role": "CC"}]},
    ]
    documents = finished_documents(rollup_of([copies]), SCORING)
    contact = documents.contacts[0]
    assert (contact["total_count"], contact["to_count"], contact["cc_count"]) == (1, 1, 1)
    assert contact["first_contact_date"] == "2001-04-30T00:00:00Z"
    assert contact["accounts"] == ["ann", "bob"]
    assert [r["first_engagement_date"] for r in documents.relationships] == ["2001-05-02T00:00:00Z", "2001-04-30T00:00:00Z"]
    domain_months = [t["month"] for t in documents.timeline if t["scope"] == "domain"]
    assert domain_months == ["2001-04-01T00:00:00Z"]


def test_new_mail_that_flags_a_known_address_automated_sends_its_domain_to_recomputation():
    first = [{"account": "ann", "message_id": "<a@x>", "date": "2001-05-02T00:00:00Z",
              "message_roles": [{"email_address": "news@acme.com", "domain": "acme.com", "role": "From"}]}]
    second = [{"account": "bob", "message_id": "<b@x>", "date": "2001-06-02T00:00:00Z",
               "message_roles": [{"email_address": "news@acme.com", "domain": "acme.com", "role": "From"}],
               "automated_addresses": ["news@acme.com"]}]
    stored = keyed(finished_documents(rollup_of([first]), SCORING))
    assert flipped_to_automated(window_documents(rollup_of([second])), stored, SCORING) == {"acme.com"}
