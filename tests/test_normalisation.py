"""The pipeline's address and date rules agree with the oracle's own implementation."""

from __future__ import annotations

import pytest

import oracle
from mailforce.core.addresses import normalise_address
from mailforce.core.dates import format_utc, parse_source_date
from mailforce.tools.synthetic import dirty_corpus

TRICKY_ADDRESSES = [
    '"Doe, Jane" <Jane.Doe@Acme.COM>', " <bob@beta.org> ", "bob@beta.org>", "<bob@beta.org",
    "a@b", "a@@b.com", "@b.com", "a@.com", "a@b.com.", "a b@c.com", "jösé@exämple.com",
    "'/o=enron/ou=na/cn=recipients/cn=jdoe'@enron.com", "k..allen@enron.com", "", "   ", None, 42,
    ["x@y.com"], "Name <a@b.com> <c@d.com>", "<>", "x@y.z", "UPPER@CASE.ORG\t",
]
TRICKY_DATES = [
    "2001-05-14T16:39:00-07:00", "2001-05-14T16:39:00-0700", "2001-05-14T23:39:00Z", "2001-05-14",
    "2001-05-14T23:39", "2001-05-14T23:39:00.999Z", "2001-05-14 23:39:00", "not a date", "",
    989883540000, 0, True, None, "Mon, 14 May 2001 16:39:00 -0700", "2001-13-45T00:00:00Z",
]


def _addresses_in_dirty_corpus():
    for document in dirty_corpus():
        for field in ("from", "to", "cc"):
            value = (document["_source"].get(field) or {}).get("address")
            yield from value if isinstance(value, list) else [value]


@pytest.mark.parametrize("entry", TRICKY_ADDRESSES)
def test_tricky_addresses(entry):
    assert normalise_address(entry) == oracle.normalise_address(entry)


def test_every_address_of_the_dirty_corpus():
    entries = list(_addresses_in_dirty_corpus())
    assert len(entries) > 1000
    disagreements = [entry for entry in entries if normalise_address(entry) != oracle.normalise_address(entry)]
    assert disagreements == []


@pytest.mark.parametrize("value", TRICKY_DATES)
def test_tricky_dates(value):
    ours = parse_source_date(value)
    theirs = oracle.parse_date(value)
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert format_utc(ours) == oracle.format_date(theirs)
