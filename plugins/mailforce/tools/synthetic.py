"""Deterministic synthetic mailbox corpora (source documents of SPEC §3), for tests and benchmarks.

``iter_corpus(spec)`` streams ``{"_id", "_source"}`` documents one at a time: memory stays flat
however many messages are asked for, and the same ``CorpusSpec`` always yields the same documents.
``dirty_corpus()`` is a small corpus guaranteed to hold every kind of dirt the pipeline must survive.

Pure standard library on purpose: the benchmark and the tests may import it without Airflow or a
search client.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

UTC = timezone.utc

# Deterministic ingredients of names; any fixed lists would do.
_FIRST_NAMES = (
    "jim", "anna", "raj", "mei", "lars", "sofia", "omar", "kate", "luis", "nina", "piotr", "yuki",
    "ben", "chloe", "ivan", "zara", "tom", "leila", "sam", "ines",
)
_LAST_NAMES = (
    "smith", "tanaka", "garcia", "novak", "okafor", "larsen", "rossi", "kim", "dubois", "silva",
    "meyer", "chen", "patel", "moreau", "ivanova", "brown",
)
_DOMAIN_WORDS = (
    "acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne", "tyrell",
    "cyberdyne", "soylent", "gringotts", "oscorp", "wonka", "nakatomi", "pied",
)
_TOP_LEVEL_DOMAINS = ("com", "net", "org", "co.uk", "de", "io", "fr", "com.au")
_SUBJECTS = (
    "Re: quarterly numbers", "Meeting tomorrow", "Fwd: contract draft", "Lunch?", "Status update",
    "Re: Re: pipeline capacity", "Invoice 4471", "Agenda for Monday", "Re: gas nominations",
)
# Unicode addresses and display names: valid addresses, non-ASCII.
_UNICODE_ADDRESSES = (
    ('"José" <josé@exämple.com>', "josé@exämple.com"),
    ("Jürgen Müller <jürgen.müller@bücher.de>", "jürgen.müller@bücher.de"),
    ('"渡辺 健" <渡辺@例え.jp>', "渡辺@例え.jp"),
    ("Zoë <ZOË@CAFÉ.FR>", "zoë@café.fr"),
)
# Invalid addresses, one per kind: the pipeline must skip and count them.
INVALID_ADDRESSES = {
    "no_at": "jim.acme.com",
    "two_at": "jim@home@acme.com",
    "no_dot_in_domain": "jim@localhost",
    "empty_local_part": "@acme.com",
    "trailing_dot_domain": "jim@acme.com.",
    "whitespace_inside": "jim smith@acme.com",
}
# Dates no parser should accept.
UNPARSEABLE_DATES = ("not a date", "yesterday", "2001-13-45T99:00:00Z", "")
# How many To/CC recipients an ordinary message has (value, weight).
_TO_COUNT_WEIGHTS = ((1, 62), (2, 20), (3, 10), (4, 5), (5, 3))
_CC_COUNT_WEIGHTS = ((0, 62), (1, 24), (2, 10), (3, 4))


@dataclass(frozen=True)
class CorpusSpec:
    """What to generate. All rates are per original message, between 0 and 1."""

    seed: int = 1  # same seed and parameters -> same documents
    messages: int = 1_000  # original messages; duplicate copies come on top
    accounts: int = 5  # mailboxes, named acct-0001, acct-0002, ...
    company_domain: str = "kunaico.com"  # the accounts' own (internal) domain
    correspondent_domains: int = 50  # outside domains, popularity ~ 1 / rank ** zipf_exponent
    zipf_exponent: float = 1.1  # higher = a few domains carry most of the mail
    addresses_per_domain: int = 20  # addresses per outside domain (also Zipf-popular within it)
    colleagues: int = 30  # other addresses at company_domain (besides the accounts' own)
    internal_share: float = 0.15  # share of correspondents picked among colleagues
    sent_fraction: float = 0.35  # share of messages sent by the account (else received)
    large_list_rate: float = 0.005  # share of messages with a large recipient list ...
    large_list_size: tuple[int, int] = (40, 250)  # ... of this many addresses (inclusive range)
    start: datetime = datetime(2000, 1, 1, tzinfo=UTC)  # dates are uniform in [start, end)
    end: datetime = datetime(2002, 1, 1, tzinfo=UTC)
    same_timestamp_rate: float = 0.01  # share of messages reusing the previous message's date
    dirt: float = 0.0  # share of documents given one or more kinds of dirt (see DIRT_KINDS)
    heavy_domain: str = "gmail.com"  # the domain that heavy_domain_share sends mail to
    heavy_domain_share: float = 0.0  # share of outside address picks going to heavy_domain
    heavy_domain_addresses: int = 2_000  # addresses at heavy_domain
    cross_account_duplicate_rate: float = 0.0  # same messageId also harvested by another account
    within_account_duplicate_rate: float = 0.0  # a second copy in the same account (other roles/date)

    def account_names(self) -> list[str]:
        return [f"acct-{number:04d}" for number in range(1, self.accounts + 1)]


# Every kind of dirt the generator can apply, by name (used by tests to check coverage).
ADDRESS_DIRT_KINDS = (
    "mixed_case", "surrounding_whitespace", "angle_brackets", "quoted_display_name",
    "plain_display_name", "unicode",
)
DOCUMENT_DIRT_KINDS = (
    "missing_to", "missing_cc", "from_as_array", "missing_date", "unparseable_date", "date_without_zone",
    "date_with_offset", "date_with_fraction", "date_only", "missing_message_id", "empty_message_id",
    "invalid_address", "only_invalid_addresses",
)
DIRT_KINDS = ADDRESS_DIRT_KINDS + DOCUMENT_DIRT_KINDS
_DATE_DIRT_KINDS = frozenset(
    ("missing_date", "unparseable_date", "date_without_zone", "date_with_offset", "date_with_fraction", "date_only")
)
_CLEAN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


@dataclass
class _Draft:
    """A message before it becomes a document (addresses are clean until dirt is applied)."""

    account: str
    message_id: str
    date: datetime
    sender: str
    to: list[str]
    cc: list[str]
    subject: str


class _AddressBook:
    """Deterministic address pools and Zipf-like pickers; memory ~ domains x addresses, not N."""

    def __init__(self, spec: CorpusSpec) -> None:
        self.spec = spec
        self.domains = [_domain_name(rank) for rank in range(spec.correspondent_domains)]
        self._domain_weights = _cumulative_zipf(len(self.domains), spec.zipf_exponent)
        self._address_weights = _cumulative_zipf(spec.addresses_per_domain, 1.0)
        self._heavy_weights = _cumulative_zipf(spec.heavy_domain_addresses, 0.8)
        self.owners = {name: f"{name}@{spec.company_domain}" for name in spec.account_names()}

    def outside_domain(self, rng: random.Random) -> str:
        if rng.random() < self.spec.heavy_domain_share or not self.domains:
            return self.spec.heavy_domain
        return self.domains[_pick(rng, self._domain_weights)]

    def address_at(self, rng: random.Random, domain: str) -> str:
        if domain == self.spec.heavy_domain:
            return _person(_pick(rng, self._heavy_weights), domain)
        return _person(_pick(rng, self._address_weights), domain)

    def correspondent(self, rng: random.Random, primary_domain: str) -> str:
        """Another party: a colleague, someone at the message's main domain, or anyone outside."""
        if self.spec.colleagues and rng.random() < self.spec.internal_share:
            return _person(rng.randrange(self.spec.colleagues), self.spec.company_domain)
        domain = primary_domain if rng.random() < 0.5 else self.outside_domain(rng)
        return self.address_at(rng, domain)


def _cumulative_zipf(count: int, exponent: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, count + 1)))


def _pick(rng: random.Random, cumulative_weights: list[float]) -> int:
    return bisect.bisect_right(cumulative_weights, rng.random() * cumulative_weights[-1])


def _domain_name(rank: int) -> str:
    word = _DOMAIN_WORDS[rank % len(_DOMAIN_WORDS)]
    top_level = _TOP_LEVEL_DOMAINS[(rank // len(_DOMAIN_WORDS)) % len(_TOP_LEVEL_DOMAINS)]
    return f"{word}{rank}.{top_level}"


def _person(number: int, domain: str) -> str:
    # (number % 20, (number // 20 + number) % 16) is one-to-one for number < 320: varied, unique names.
    first = _FIRST_NAMES[number % len(_FIRST_NAMES)]
    last = _LAST_NAMES[(number // len(_FIRST_NAMES) + number) % len(_LAST_NAMES)]
    suffix = number // (len(_FIRST_NAMES) * len(_LAST_NAMES))
    return f"{first}.{last}{suffix or ''}@{domain}"


def _unique(addresses: list[str]) -> list[str]:
    return list(dict.fromkeys(addresses))  # keeps the first occurrence's order


def _weighted_count(rng: random.Random, weights: tuple[tuple[int, int], ...]) -> int:
    return rng.choices([value for value, _ in weights], [weight for _, weight in weights])[0]


# --------------------------------------------------------------------------------------------------
# Clean drafts
# --------------------------------------------------------------------------------------------------


def _draft_message(
    rng: random.Random,
    spec: CorpusSpec,
    book: _AddressBook,
    sequence: int,
    previous_date: datetime | None,
    account: str | None = None,
) -> _Draft:
    account = account or rng.choice(spec.account_names())
    owner = book.owners[account]
    primary_domain = book.outside_domain(rng)
    counterpart = book.address_at(rng, primary_domain)
    if previous_date is not None and rng.random() < spec.same_timestamp_rate:
        date = previous_date  # identical timestamps, as paging must not lose them
    else:
        span_seconds = max(1, int((spec.end - spec.start).total_seconds()))
        date = spec.start + timedelta(seconds=rng.randrange(span_seconds))

    if rng.random() < spec.large_list_rate:
        to_count, cc_count = rng.randint(*spec.large_list_size), 0
        if rng.random() < 0.5:
            to_count, cc_count = rng.randint(1, 3), to_count
    else:
        to_count, cc_count = _weighted_count(rng, _TO_COUNT_WEIGHTS), _weighted_count(rng, _CC_COUNT_WEIGHTS)
    others = [book.correspondent(rng, primary_domain) for _ in range(to_count + cc_count)]

    if rng.random() < spec.sent_fraction:
        sender, to = owner, [counterpart] + others[: to_count - 1]
    else:
        sender, to = counterpart, [owner] + others[: to_count - 1]
    cc = others[max(0, to_count - 1) :]
    to = _unique(to)
    cc = [address for address in _unique(cc) if address not in to and address != sender]
    sender_domain = sender.split("@", 1)[1]
    return _Draft(
        account=account,
        message_id=f"<{date:%Y%m%d%H%M%S}.{sequence:x}.{rng.getrandbits(32):08x}@mail.{sender_domain}>",
        date=date,
        sender=sender,
        to=to,
        cc=cc,
        subject=rng.choice(_SUBJECTS),
    )


def _cross_account_copy(rng: random.Random, draft: _Draft, book: _AddressBook) -> _Draft | None:
    """The same message as harvested by another account: same headers, another recorded date."""
    others = [account for account in book.owners if account != draft.account]
    if not others:
        return None
    other = rng.choice(others)
    other_owner = book.owners[other]
    if other_owner not in draft.to and other_owner not in draft.cc and other_owner != draft.sender:
        draft.cc.append(other_owner)  # the other mailbox got it because it was on the message
    shifted = draft.date + timedelta(seconds=rng.choice((-1, 1)) * rng.randint(1, 7_200))
    return replace(draft, account=other, date=shifted, to=list(draft.to), cc=list(draft.cc))


def _within_account_copy(rng: random.Random, draft: _Draft, book: _AddressBook) -> _Draft:
    """A second copy in the same mailbox (say, Sent and Inbox): other roles, another date."""
    to, cc = list(draft.to), list(draft.cc)
    if len(to) > 1 and rng.random() < 0.5:
        cc.append(to.pop())  # one recipient moved from To to CC
    else:
        extra = book.correspondent(rng, draft.sender.split("@", 1)[1])
        if extra not in to and extra != draft.sender:
            cc.append(extra)  # a recipient only this copy shows
    shifted = draft.date + timedelta(seconds=rng.choice((-1, 1)) * rng.randint(1, 3_600))
    return replace(draft, date=shifted, to=to, cc=_unique(cc))


# --------------------------------------------------------------------------------------------------
# Documents and dirt
# --------------------------------------------------------------------------------------------------


def _clean_date(date: datetime) -> str:
    return date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _document(draft: _Draft, document_id: str) -> dict:
    source = {
        "account": draft.account,
        "messageId": draft.message_id,
        "date": _clean_date(draft.date),
        "from": {"address": draft.sender},
        "to": {"address": list(draft.to)},
        "cc": {"address": list(draft.cc)},
        "subject": draft.subject,
    }
    return {"_id": document_id, "_source": source}


def dirty_address(address: str, kind: str, rng: random.Random | None = None) -> str:
    """One valid address written the messy way ``kind`` says (a kind of ADDRESS_DIRT_KINDS)."""
    rng = rng or random.Random(0)
    local_part, domain = address.split("@", 1)
    display = local_part.split(".")[0].capitalize()
    if kind == "mixed_case":
        return f"{local_part.capitalize()}@{domain.upper()}"
    if kind == "surrounding_whitespace":
        return rng.choice((" ", "  ", "\t", "\n")) + address + rng.choice((" ", "  ", "\t"))
    if kind == "angle_brackets":
        return f"<{address}>"
    if kind == "quoted_display_name":
        return f'"{display}, {local_part[:1].upper()}" <{address}>'
    if kind == "plain_display_name":
        return f"{display} <{address}>"
    if kind == "unicode":
        return rng.choice(_UNICODE_ADDRESSES)[0]
    raise ValueError(f"unknown address dirt kind {kind!r}")


def _dirty_date(date: datetime, kind: str, rng: random.Random) -> str | None:
    if kind == "missing_date":
        return None
    if kind == "unparseable_date":
        return rng.choice(UNPARSEABLE_DATES)
    if kind == "date_without_zone":
        return date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if kind == "date_with_offset":
        offset = timedelta(hours=rng.choice((-8, -7, -5, 1, 2, 5)), minutes=rng.choice((0, 30)))
        return date.astimezone(timezone(offset)).isoformat()
    if kind == "date_with_fraction":
        return date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rng.randrange(1000):03d}Z"
    if kind == "date_only":
        return date.astimezone(UTC).strftime("%Y-%m-%d")
    raise ValueError(f"unknown date dirt kind {kind!r}")


def apply_dirt(document: dict, kind: str, rng: random.Random) -> None:
    """Dirty one document in place the way ``kind`` (one of DIRT_KINDS) says."""
    source = document["_source"]
    if kind in ADDRESS_DIRT_KINDS:
        _dirty_one_address(source, kind, rng)
    elif kind in ("missing_to", "missing_cc"):
        source.pop(kind.removeprefix("missing_"), None)
    elif kind == "from_as_array":
        if not isinstance(source["from"]["address"], list):
            source["from"]["address"] = [source["from"]["address"]]
    elif kind in _DATE_DIRT_KINDS:
        clean = _clean_date_of(source)
        if clean is None:
            return  # one kind of date dirt per document: the date is already dirty
        date = _dirty_date(clean, kind, rng)
        if date is None:
            source.pop("date")
        else:
            source["date"] = date
    elif kind == "missing_message_id":
        source.pop("messageId", None)
    elif kind == "empty_message_id":
        source["messageId"] = ""
    elif kind == "invalid_address":
        _address_list(source, "to").append(rng.choice(list(INVALID_ADDRESSES.values())))
    elif kind == "only_invalid_addresses":
        invalid = list(INVALID_ADDRESSES.values())
        source["from"] = {"address": rng.choice(invalid)}
        source["to"] = {"address": rng.sample(invalid, 2)}
        source["cc"] = {"address": []}
    else:
        raise ValueError(f"unknown dirt kind {kind!r}")


def _clean_date_of(source: dict) -> datetime | None:
    """The document's date if it is still as the generator wrote it, else None."""
    value = source.get("date")
    if not (isinstance(value, str) and _CLEAN_DATE.fullmatch(value)):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # "2001-13-45T99:00:00Z" has the clean shape but is no date
        return None


def _address_list(source: dict, field_name: str) -> list:
    container = source.setdefault(field_name, {"address": []})
    if not isinstance(container.get("address"), list):
        container["address"] = [container["address"]] if container.get("address") else []
    return container["address"]


def _dirty_one_address(source: dict, kind: str, rng: random.Random) -> None:
    """Rewrite one randomly chosen still-clean address of the document (From, To or CC)."""
    slots: list[tuple[str, int | None]] = []
    for field_name in ("from", "to", "cc"):
        value = source.get(field_name, {}).get("address")
        if isinstance(value, list):
            slots += [(field_name, position) for position, entry in enumerate(value) if _is_clean(entry)]
        elif _is_clean(value):
            slots.append((field_name, None))
    if not slots:
        return
    field_name, position = rng.choice(slots)
    container = source[field_name]
    if position is None:
        container["address"] = dirty_address(container["address"], kind, rng)
    else:
        container["address"][position] = dirty_address(container["address"][position], kind, rng)


def _is_clean(value: object) -> bool:
    """A plain valid lower-case address, as the generator writes before dirt."""
    if not isinstance(value, str) or value.count("@") != 1 or value != value.strip().lower():
        return False
    local_part, domain = value.split("@")
    return bool(local_part) and "." in domain and not any(character in value for character in " <>\t")


def _maybe_dirty(document: dict, rate: float, rng: random.Random) -> dict:
    if rate > 0 and rng.random() < rate:
        for kind in rng.sample(DIRT_KINDS, rng.choice((1, 1, 1, 2, 3))):
            apply_dirt(document, kind, rng)
    return document


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------


def iter_corpus(spec: CorpusSpec) -> Iterator[dict]:
    """Stream the corpus: ``{"_id": str, "_source": {...}}`` per source document.

    Each original message is followed at once by its duplicate copies (if any), so nothing is kept
    between messages but the previous date.
    """
    rng = random.Random(spec.seed)
    book = _AddressBook(spec)
    previous_date: datetime | None = None
    document_number = itertools.count(1)

    def next_id() -> str:
        return f"src-{spec.seed}-{next(document_number):09d}"

    for sequence in range(spec.messages):
        draft = _draft_message(rng, spec, book, sequence, previous_date)
        previous_date = draft.date
        copies: list[_Draft] = []
        if rng.random() < spec.cross_account_duplicate_rate:
            cross_copy = _cross_account_copy(rng, draft, book)  # may add a CC to the original too
            if cross_copy is not None:
                copies.append(cross_copy)
        if rng.random() < spec.within_account_duplicate_rate:
            copies.append(_within_account_copy(rng, draft, book))
        for version in [draft] + copies:
            yield _maybe_dirty(_document(version, next_id()), spec.dirt, rng)


def dirty_corpus(seed: int = 7) -> list[dict]:
    """About 600 messages over 6 accounts holding every dirt kind and duplication case at least once.

    Besides a randomly dirtied body it always contains: one document per DIRT_KINDS entry, one per
    invalid address kind, a message with 500 recipients, messages with identical timestamps,
    within-account copies with different roles and dates, and one messageId seen by two accounts
    with different dates.
    """
    spec = CorpusSpec(
        seed=seed, messages=520, accounts=6, correspondent_domains=12, addresses_per_domain=8,
        heavy_domain_share=0.1, heavy_domain_addresses=40, dirt=0.3, same_timestamp_rate=0.02,
        cross_account_duplicate_rate=0.05, within_account_duplicate_rate=0.04,
    )
    documents = list(iter_corpus(spec))
    documents += _guaranteed_cases(spec, random.Random(seed * 7919 + 1))
    return documents


def _guaranteed_cases(spec: CorpusSpec, rng: random.Random) -> list[dict]:
    """Hand-placed documents, so each case exists whatever the random body happens to hold."""
    book = _AddressBook(spec)
    sequence = itertools.count(1_000_000)
    documents: list[dict] = []

    def add(draft: _Draft, *kinds: str) -> dict:
        document = _document(draft, f"case-{spec.seed}-{len(documents) + 1:04d}")
        for kind in kinds:
            apply_dirt(document, kind, rng)
        documents.append(document)
        return document

    def fresh(account: str | None = None) -> _Draft:
        draft = _draft_message(rng, spec, book, next(sequence), None, account)
        if not draft.cc:  # so "missing_cc" and CC dirt have something to act on
            draft.cc.append(book.address_at(rng, book.outside_domain(rng)))
        return draft

    for kind in DIRT_KINDS:
        add(fresh(), kind)
    for invalid in INVALID_ADDRESSES.values():
        document = add(fresh())
        _address_list(document["_source"], "cc").append(invalid)
    for unparseable in UNPARSEABLE_DATES:
        add(fresh())["_source"]["date"] = unparseable

    # A message with 500 distinct recipients (To and CC), all valid.
    huge = fresh()
    recipients = [_person(number, rng.choice(book.domains or [spec.heavy_domain])) for number in range(500)]
    huge.to, huge.cc = _unique(recipients[:300]), _unique(recipients[300:])
    add(huge)

    # Identical timestamps: three messages of one account, same instant.
    shared_date = fresh().date
    for _ in range(3):
        add(replace(fresh(spec.account_names()[0]), date=shared_date))

    # Within one account: copies of one messageId with different roles and dates.
    original = fresh()
    original.to = original.to[:1] + [book.address_at(rng, book.outside_domain(rng))]
    add(original)
    moved = replace(original, to=original.to[:1], cc=original.cc + original.to[1:],
                    date=original.date + timedelta(minutes=17))
    add(moved)
    add(replace(original, date=original.date - timedelta(hours=2)), "only_invalid_addresses")

    # Across accounts: one messageId in two mailboxes with different dates.
    shared = fresh()
    other_account = next(account for account in spec.account_names() if account != shared.account)
    shared.cc.append(book.owners[other_account])
    add(shared)
    add(replace(shared, account=other_account, date=shared.date + timedelta(minutes=3)))
    return documents
