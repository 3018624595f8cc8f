"""Which person an address belongs to, and a person's figures across their addresses (pure).

An address belongs to exactly one person (docs/SEMANTICS.md, "People"):
1. a provider rule the provider itself documents folds it into the mailbox it delivers to
   (`PROVIDER_RULES`: Gmail ignores dots and `+tags`, `googlemail.com` is `gmail.com`; a few
   providers document `+tag` sub-addressing); the folded address names the mailbox;
2. the operator's alias list joins folded addresses: each entry says "this address is the same
   person as that one"; a person is a connected group of folded addresses under the entries;
3. the person's canonical address is the smallest folded address of its group (as text), and its
   `person_id` a document id of that address (`mailforce.core.ids`).

Nothing is guessed: suggestions (`suggest_aliases`) are listed for an operator and never applied.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from mailforce.core.ids import document_id
from mailforce.core.rollups import COUNT_FIELDS, ROLE_COUNT_FIELDS
from mailforce.core.strength import best_connected

# How a person document explains each address (`explanation[].joined_by`).
JOINED_CANONICAL = "canonical"  # the address is the person's canonical address
JOINED_PROVIDER = "provider"  # a provider rule folds it into the canonical address
JOINED_ALIAS = "alias"  # the alias list joins its folded address to the person

# Suggestion rules (`Suggestion.rule`).
SAME_LOCAL_PART = "same_local_part_in_organization"
FIRST_LAST_AND_INITIAL = "first_last_and_flast_with_one_display_name"


@dataclass(frozen=True)
class ProviderRule:
    """What one provider documents about the addresses it delivers to one mailbox."""

    name: str
    domains: tuple[str, ...]  # the domains the rule applies to (exactly, not their subdomains)
    canonical_domain: str  # the domain every address of `domains` is written with
    ignores_dots: bool  # dots in the local part are ignored
    plus_tags: bool  # `local+tag` is delivered to `local`
    documented_at: str  # where the provider says so (docs/SEMANTICS.md cites it)


PROVIDER_RULES: tuple[ProviderRule, ...] = (
    ProviderRule("gmail", ("gmail.com", "googlemail.com"), "gmail.com", ignores_dots=True, plus_tags=True,
                 documented_at="Gmail Help, support.google.com/mail: 'Dots don't matter in Gmail addresses' "
                               "(answer 7436150), '+' task-specific addresses, googlemail.com is gmail.com"),
    ProviderRule("outlook", ("outlook.com", "hotmail.com"), "", ignores_dots=False, plus_tags=True,
                 documented_at="Microsoft Support, support.microsoft.com: plus addressing in Outlook.com"),
    ProviderRule("fastmail", ("fastmail.com",), "", ignores_dots=False, plus_tags=True,
                 documented_at="Fastmail Help, fastmail.help: 'Plus addressing and subdomain addressing'"),
)
_RULE_BY_DOMAIN: dict[str, ProviderRule] = {domain: rule for rule in PROVIDER_RULES for domain in rule.domains}


def folded_address(address: str) -> tuple[str, str | None]:
    """(the address its provider delivers it to, the provider rule's name or None).

    `J.Doe+news@googlemail.com` (normalised: lower case) -> (`jdoe@gmail.com`, `gmail`). A local
    part the rule would leave empty is kept as it is."""
    local, _, domain = address.rpartition("@")
    rule = _RULE_BY_DOMAIN.get(domain)
    if rule is None:
        return address, None
    folded_local = local.split("+", 1)[0] if rule.plus_tags else local
    if rule.ignores_dots:
        folded_local = folded_local.replace(".", "")
    if not folded_local:
        return address, None
    folded = f"{folded_local}@{rule.canonical_domain or domain}"
    return folded, (rule.name if folded != address else None)


def person_id_of(canonical_address: str) -> str:
    """The id of the person whose canonical address this is (also its document `_id`)."""
    return document_id(canonical_address)


def parse_alias(value: str) -> tuple[str, str]:
    """`address=same-person-address` -> the pair, both normalised (trim, angle brackets, lower
    case); ValueError saying what is wrong."""
    left, separator, right = str(value).partition("=")
    pair = (_normalised(left), _normalised(right))
    if not separator or not all(_is_address(address) for address in pair):
        raise ValueError(f"{value!r} is not address=address (e.g. 'jim@gmail.com=jim.smith@acme.com')")
    if pair[0] == pair[1]:
        raise ValueError(f"{value!r} joins an address to itself")
    return pair


def _normalised(entry: str) -> str:
    text = entry
    start = text.rfind("<")
    if start >= 0 and text.find(">", start) > start:
        text = text[start + 1:text.find(">", start)]
    return text.strip().lower()


_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")


def _is_address(address: str) -> bool:
    domain = address.rpartition("@")[2]
    return bool(_ADDRESS.match(address)) and len(domain.split(".")) >= 2 and all(domain.split("."))


@dataclass(frozen=True)
class People:
    """The person of every address under the provider rules and the alias list."""

    aliases: tuple[tuple[str, str], ...] = ()  # (address, same-person address), sorted
    _canonical: dict[str, str] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        groups = _connected_groups((folded_address(left)[0], folded_address(right)[0]) for left, right in self.aliases)
        for group in groups:
            canonical = min(group)
            for member in group:
                self._canonical[member] = canonical

    def canonical_of(self, address: str) -> str:
        folded = folded_address(address)[0]
        return self._canonical.get(folded, folded)

    def person_of(self, address: str) -> str:
        """The address's `person_id`."""
        return person_id_of(self.canonical_of(address))

    def joined_by(self, address: str) -> str:
        """How the address joins its person (`explanation[].joined_by`)."""
        canonical = self.canonical_of(address)
        if address == canonical:
            return JOINED_CANONICAL
        return JOINED_PROVIDER if folded_address(address)[0] == canonical else JOINED_ALIAS

    def group_of(self, address: str) -> frozenset[str]:
        """Every folded address of the address's person (the alias list's group, or itself)."""
        canonical = self.canonical_of(address)
        members = {folded for folded, root in self._canonical.items() if root == canonical}
        return frozenset(members or {canonical})


def _connected_groups(edges: Iterable[tuple[str, str]]) -> list[set[str]]:
    """The connected groups of an undirected graph given by its edges."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for left, right in edges:
        left_root, right_root = root(left), root(right)
        if left_root != right_root:
            parent[max(left_root, right_root)] = min(left_root, right_root)
    groups: dict[str, set[str]] = defaultdict(set)
    for node in list(parent):
        groups[root(node)].add(node)
    return list(groups.values())


def label_people(documents: Iterable[dict[str, Any]], people: People) -> None:
    """`person_id` on each document with an `email_address` (relationships and contacts)."""
    for document in documents:
        document["person_id"] = people.person_of(document["email_address"])


# --- a person's document ---------------------------------------------------------------------


@dataclass
class PersonFigures:
    """A person's messages across their addresses, from the roles documents naming any of them:
    each message id counts once, however many of their addresses (or mailboxes) it names."""

    addresses: frozenset[str]
    role_keys: dict[str, set[str]] = field(default_factory=lambda: {role: set() for role in ROLE_COUNT_FIELDS})
    key_dates: dict[str, str] = field(default_factory=dict)
    account_messages: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add_copy(self, copy: Mapping[str, Any]) -> None:
        """One roles document (one account's copy of a message) naming some of the addresses."""
        roles = {entry["role"] for entry in copy.get("message_roles", ()) if entry["email_address"] in self.addresses}
        if not roles:
            return
        key = copy["message_id"]
        copy_date = copy.get("key_date") or copy["date"]
        self.key_dates[key] = min(self.key_dates.get(key, copy_date), copy_date)
        for role in roles:
            self.role_keys[role].add(key)
        self.account_messages[copy["account"]].add(key)


def person_document(canonical: str, contacts: Sequence[Mapping[str, Any]], people: People,
                    figures: PersonFigures | None, strengths: Mapping[str, int] | None) -> dict[str, Any]:
    """One person's document from the contacts of their addresses and, when they have several, the
    figures over their messages (`figures`) and each account's strongest relationship with any of
    them (`strengths`); with one address, its contact's figures are the person's."""
    contacts = sorted(contacts, key=lambda contact: contact["email_address"])
    addresses = [contact["email_address"] for contact in contacts]
    document: dict[str, Any] = {
        "person_id": person_id_of(canonical),
        "canonical_address": canonical,
        "addresses": addresses,
        "addresses_count": len(addresses),
        "domains": sorted({contact["domain"] for contact in contacts}),
        "organizations": sorted({contact.get("organization") or contact["domain"] for contact in contacts}),
        "automated": all(contact.get("automated") for contact in contacts),
        "explanation": [_explained(address, people) for address in addresses],
    }
    if figures is None:
        (contact,) = contacts
        document.update({name: contact[name] for name in (*COUNT_FIELDS, "total_count", "first_contact_date",
                                                          "latest_contact_date", "accounts", "accounts_count")})
        document["best_connected_accounts"] = list(contact.get("best_connected_accounts") or ())
        return document
    for role, count_field in ROLE_COUNT_FIELDS.items():
        document[count_field] = len(figures.role_keys[role])
    dates = sorted(figures.key_dates.values())
    accounts = sorted(figures.account_messages)
    document.update({
        "total_count": len(figures.key_dates),
        "first_contact_date": dates[0],
        "latest_contact_date": dates[-1],
        "accounts": accounts,
        "accounts_count": len(accounts),
        "best_connected_accounts": best_connected(
            {"account": account, "strength": int((strengths or {}).get(account, 0)),
             "total_count": len(figures.account_messages[account])} for account in accounts),
    })
    return document


def _explained(address: str, people: People) -> dict[str, Any]:
    return {"email_address": address, "joined_by": people.joined_by(address),
            "provider_rule": folded_address(address)[1]}


# --- suggestions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    """Addresses that are likely one person, for an operator to accept (never applied on their own)."""

    suggestion_id: str
    rule: str
    addresses: tuple[str, ...]  # sorted; accepting joins each to the first
    evidence: str

    def aliases(self) -> list[str]:
        """The alias entries accepting it adds."""
        return [f"{address}={self.addresses[0]}" for address in self.addresses[1:]]

    def to_dict(self) -> dict[str, Any]:
        return {"suggestion_id": self.suggestion_id, "rule": self.rule, "addresses": list(self.addresses),
                "evidence": self.evidence}


def suggest_aliases(contacts: Iterable[Mapping[str, Any]], people: People,
                    names: Mapping[str, Iterable[str]] | None = None) -> list[Suggestion]:
    """Likely aliases among addresses that are not yet one person, sorted by id: the same local part
    on two or more hosts of one organisation (contacts: `email_address`, `domain`, `organization`),
    and `first.last` with `flast` under one display name (`names`: address -> its display names)."""
    by_local_part: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for contact in contacts:
        address = contact["email_address"]
        local = address.rpartition("@")[0]
        organization = contact.get("organization") or contact["domain"]
        by_local_part[(organization, local)][address] = people.canonical_of(address)
    suggestions = []
    for (organization, local), canonical_by_address in sorted(by_local_part.items()):
        if len(set(canonical_by_address.values())) < 2:
            continue
        suggestions.append(_suggestion(SAME_LOCAL_PART, canonical_by_address,
                                       f"local part {local!r} on {len(canonical_by_address)} hosts of the "
                                       f"organisation {organization}"))
    suggestions += _initial_suggestions(names or {}, people)
    return sorted(suggestions, key=lambda suggestion: suggestion.suggestion_id)


def _suggestion(rule: str, addresses: Iterable[str], evidence: str) -> Suggestion:
    ordered = tuple(sorted(addresses))
    return Suggestion(suggestion_id=document_id(rule, *ordered)[:12], rule=rule, addresses=ordered, evidence=evidence)


def _initial_suggestions(names: Mapping[str, Iterable[str]], people: People) -> list[Suggestion]:
    """`first.last@...` and `flast@...` that a header wrote under the same display name `First Last`."""
    by_name: dict[str, set[str]] = defaultdict(set)
    for address, address_names in names.items():
        for name in address_names:
            by_name[name].add(address)
    found: dict[tuple[str, str], str] = {}
    for name, addresses in sorted(by_name.items()):
        words = re.findall(r"[a-z0-9]+", name)
        if len(words) < 2:
            continue
        first, last = words[0], words[-1]
        long_form = [address for address in addresses if address.rpartition("@")[0] == f"{first}.{last}"]
        short_form = [address for address in addresses if address.rpartition("@")[0] == f"{first[0]}{last}"]
        for long_address in long_form:
            for short_address in short_form:
                if people.canonical_of(long_address) != people.canonical_of(short_address):
                    found.setdefault((long_address, short_address), name)
    return [_suggestion(FIRST_LAST_AND_INITIAL, pair, f"{pair[0]} and {pair[1]} both written as {name!r}")
            for pair, name in sorted(found.items())]


# --- a change of the alias list --------------------------------------------------------------


class AliasChangeError(ValueError):
    """A bad value in an alias change (the message names the field)."""


@dataclass(frozen=True)
class AliasChange:
    """One change of the alias list, as the form or the command line gave it (validated)."""

    change_id: str
    requested_by: str
    requested_at: str
    reason: str
    added: tuple[tuple[str, str], ...] = ()  # (address, same-person address)
    removed: tuple[str, ...] = ()  # addresses whose entry goes
    accepted_suggestions: tuple[str, ...] = ()  # suggestion ids (`suggest_aliases`)

    def to_xcom(self) -> dict[str, Any]:
        return {"change_id": self.change_id, "requested_by": self.requested_by, "requested_at": self.requested_at,
                "reason": self.reason, "added": [list(pair) for pair in self.added], "removed": list(self.removed),
                "accepted_suggestions": list(self.accepted_suggestions)}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "AliasChange":
        return cls(change_id=data["change_id"], requested_by=data["requested_by"],
                   requested_at=data["requested_at"], reason=data["reason"],
                   added=tuple(tuple(pair) for pair in data.get("added", ())),  # type: ignore[misc]
                   removed=tuple(data.get("removed", ())), accepted_suggestions=tuple(data.get("accepted_suggestions", ())))


ALIAS_FORM_FIELDS = ("add", "remove", "accept_suggestions", "reason", "requested_by")


def parse_alias_change(params: Mapping[str, Any], requested_at: str) -> AliasChange:
    """The form's values checked: at least one entry to add, remove or accept; who and why."""
    unknown = sorted(set(params) - set(ALIAS_FORM_FIELDS))
    if unknown:
        raise AliasChangeError(f"unknown field(s) {unknown}; the form has {list(ALIAS_FORM_FIELDS)}")
    lists = {}
    for name in ("add", "remove", "accept_suggestions"):
        value = params.get(name) or []
        if not isinstance(value, (list, tuple)) or not all(isinstance(entry, str) for entry in value):
            raise AliasChangeError(f"{name!r} must be a list of strings, got {value!r}")
        lists[name] = [entry.strip() for entry in value if entry.strip()]
    try:
        added = tuple(sorted({parse_alias(entry) for entry in lists["add"]}))
    except ValueError as error:
        raise AliasChangeError(f"'add': {error}") from None
    removed = tuple(sorted({_normalised(entry) for entry in lists["remove"]}))
    bad = [address for address in removed if not _is_address(address)]
    if bad:
        raise AliasChangeError(f"'remove': {bad[0]!r} is not an address")
    if not (added or removed or lists["accept_suggestions"]):
        raise AliasChangeError("nothing to change: give 'add', 'remove' or 'accept_suggestions'")
    who, why = (str(params.get(name) or "").strip() for name in ("requested_by", "reason"))
    if not who or not why:
        raise AliasChangeError("'requested_by' and 'reason' are required (they are kept in the audit record)")
    suggestions = tuple(sorted(set(lists["accept_suggestions"])))
    change_id = document_id("aliases", requested_at, who, *(f"{left}={right}" for left, right in added), "-",
                            *removed, "-", *suggestions)
    return AliasChange(change_id=change_id, requested_by=who, requested_at=requested_at, reason=why, added=added,
                       removed=removed, accepted_suggestions=suggestions)


def accepted_aliases(change: AliasChange, suggestions: Sequence[Suggestion]) -> list[tuple[str, str]]:
    """The entries a change's accepted suggestions add; AliasChangeError naming an unknown id."""
    by_id = {suggestion.suggestion_id: suggestion for suggestion in suggestions}
    unknown = [identifier for identifier in change.accepted_suggestions if identifier not in by_id]
    if unknown:
        raise AliasChangeError(f"'accept_suggestions': no current suggestion {unknown[0]!r} "
                               "(list them again: a suggestion goes once its addresses are one person)")
    return [parse_alias(entry) for identifier in change.accepted_suggestions for entry in by_id[identifier].aliases()]


def touched_mailboxes(before: People, after: People, addresses: Iterable[str]) -> set[str]:
    """Every folded address whose person may differ between two alias lists, given the addresses
    an entry names: their groups before and after."""
    touched: set[str] = set()
    for address in addresses:
        touched |= before.group_of(address) | after.group_of(address)
    return touched
