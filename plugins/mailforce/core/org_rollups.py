"""Roles documents -> organisation documents and the organisation timeline (pure; docs/SEMANTICS.md).

An organisation's figures are counted over distinct messages across its hosts, like a domain's
over its addresses: a mail naming `ect.enron.com` and `enron.com` counts once for `enron.com`. So
they are not sums of its domain documents: the compile rolls up every host of an organisation in
one rollup (one partition, one chunk), and `OrganizationRollup` counts each message once per
organisation beside the per-domain figures of `DomainRollup`.

Both paths of the compile meet here: `finished_organizations` over all time (the recompute), and
`add_organizations` adding a window's new mail to the stored organisation documents. Everything
the add path needs to stay exact is stored on the organisation document: counts over disjoint
messages add up, dates take min/max, sets unite, and `account_connections` (every account's
strongest relationship and distinct messages with the organisation) is merged per account
(strengths scored at one date only grow with new mail), from which the best-connected accounts
are ranked. A personal provider (gmail.com) gets no ranking (nobody "knows gmail.com").
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from mailforce.core.organizations import Organizations
from mailforce.core.rollups import (
    ROLE_COUNT_FIELDS,
    DomainDocuments,
    DomainRollup,
    MonthFigures,
    Scoring,
    Span,
    connection_entry,
    month_of,
    top_addresses,
)
from mailforce.core.strength import best_connected

ORGANIZATION_TIMELINE_SCOPE = "organization"


@dataclass
class OrganizationFigures:
    messages: int = 0
    accounts: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    months: dict[str, MonthFigures] = field(default_factory=lambda: defaultdict(MonthFigures))
    account_messages: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class OrganizationRollup(DomainRollup):
    """A `DomainRollup` that also counts each message once per organisation of its domains.

    The caller gives it every host of each organisation it covers (the window's hosts on the add
    path, all of them on the recompute); `window_only` treats `counted_elsewhere` copies as the
    domain figures do: their mailbox's figures and the accounts only.
    """

    def __init__(self, domains: Iterable[str], organizations: Organizations, *, window_only: bool = False) -> None:
        super().__init__(domains, window_only=window_only)
        self.organizations = organizations
        self.organization_figures: dict[str, OrganizationFigures] = defaultdict(OrganizationFigures)

    def _organizations_on(self, copy: Mapping[str, Any]) -> dict[str, dict[str, set[str]]]:
        """Organisation -> address -> roles, for the entries of a copy in the rolled-up domains."""
        found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for entry in copy.get("message_roles", ()):
            if entry["domain"] in self.domains:
                organization = self.organizations.organization_of(entry["domain"])
                found[organization][entry["email_address"]].add(entry["role"])
        return found

    def add_message(self, copies: list[Mapping[str, Any]]) -> None:
        super().add_message(copies)
        counted = copies
        if self.window_only:
            counted = [copy for copy in copies if not copy.get("counted_elsewhere")]
        counted_ids = {id(copy) for copy in counted}
        across: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for copy in copies:
            on_copy = self._organizations_on(copy)
            for organization, addresses in on_copy.items():
                figures = self.organization_figures[organization]
                figures.accounts.add(copy["account"])
                figures.account_messages[copy["account"]] += 1
                figures.domains.update(address.rpartition("@")[2] for address in addresses)
                if id(copy) in counted_ids:
                    for address, roles in addresses.items():
                        across[organization][address] |= roles
        if not across:
            return
        key_date = min(copy.get("key_date") or copy["date"] for copy in counted)
        month = month_of(key_date)
        for organization, addresses in across.items():
            figures = self.organization_figures[organization]
            figures.messages += 1
            month_figures = figures.months[month]
            month_figures.messages += 1
            for roles in addresses.values():
                for role in roles:
                    month_figures.role_counts[role] += 1

    # --- figures as documents (no rankings yet) ----------------------------------------------

    def organization_timeline(self) -> list[dict[str, Any]]:
        documents = []
        for organization, figures in sorted(self.organization_figures.items()):
            for month, month_figures in sorted(figures.months.items()):
                document: dict[str, Any] = {"scope": ORGANIZATION_TIMELINE_SCOPE, "organization": organization,
                                            "month": month, "messages": month_figures.messages}
                for role, count_field in ROLE_COUNT_FIELDS.items():
                    document[count_field] = month_figures.role_counts[role]
                documents.append(document)
        return documents

    def organization_totals(self, contacts: Iterable[Mapping[str, Any]],
                            strength_by_account: Mapping[tuple[str, str], int]) -> list[dict[str, Any]]:
        """Each organisation's totals over its contacts (documents with `domain`), without rankings;
        `strength_by_account` is (account, organisation) -> the strongest relationship known."""
        by_organization: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for contact in contacts:
            by_organization[self.organizations.organization_of(contact["domain"])].append(contact)
        documents = []
        for organization, figures in sorted(self.organization_figures.items()):
            totals = dict.fromkeys(ROLE_COUNT_FIELDS.values(), 0)
            span = Span()
            for contact in by_organization[organization]:
                if not contact["total_count"]:
                    continue  # known to one more account only (`counted_elsewhere`): no dates
                span.add(contact["first_contact_date"])
                span.add(contact["latest_contact_date"])
                for count_field in totals:
                    totals[count_field] += contact[count_field]
            documents.append({
                "organization": organization,
                "kind": self.organizations.kind_of(organization),
                "domains": sorted(figures.domains),
                "domains_count": len(figures.domains),
                "first_contact_date": span.earliest,
                "latest_contact_date": span.latest,
                "total_from": totals["from_count"],
                "total_to": totals["to_count"],
                "total_cc": totals["cc_count"],
                "total_emails": figures.messages,
                "accounts": sorted(figures.accounts),
                "accounts_count": len(figures.accounts),
                "addresses_count": len(by_organization[organization]),
                "account_connections": [
                    connection_entry(account, strength_by_account.get((account, organization), 0), count)
                    for account, count in sorted(figures.account_messages.items())
                ],
            })
        return documents


def finish_organization(totals: dict[str, Any], top: list[dict[str, Any]], scoring: Scoring) -> dict[str, Any]:
    """An organisation document: totals, top addresses and, for a company, the best-connected accounts."""
    document = dict(totals)
    document["email_engagements"] = top[:scoring.top_addresses]
    document["email_engagements_complete"] = document["addresses_count"] <= scoring.top_addresses
    if document["kind"] != "personal":
        document["best_connected_accounts"] = best_connected(document["account_connections"])
    return document


def _strongest_by_organization(engagements: Iterable[Mapping[str, Any]], organizations: Organizations
                               ) -> dict[tuple[str, str], int]:
    strongest: dict[tuple[str, str], int] = defaultdict(int)
    for engagement in engagements:
        key = (engagement["account"], organizations.organization_of(engagement["domain"]))
        strongest[key] = max(strongest[key], int(engagement.get("strength_max", 0)))
    return strongest


def label_organizations(documents: DomainDocuments, organizations: Organizations) -> None:
    """`organization` on every per-domain document; `organization_kind` on relationships, contacts and
    domains; no
    best-connected accounts on the domain documents of a personal provider."""
    for kind in ("engagements", "relationships", "contacts", "timeline", "domains"):
        for document in getattr(documents, kind):
            if "domain" not in document:
                continue  # an organisation month
            organization, organization_kind = organizations.names(document["domain"])
            document["organization"] = organization
            if kind in ("relationships", "contacts", "domains"):
                document["organization_kind"] = organization_kind
            if kind == "domains" and organization_kind == "personal":
                document.pop("best_connected_accounts", None)


def finished_organizations(rollup: OrganizationRollup, documents: DomainDocuments, scoring: Scoring) -> None:
    """The organisation documents and months of a rollup over all time, added to `documents` (which
    `finished_documents` made from the same rollup); labels every document with its organisation."""
    strongest = _strongest_by_organization(documents.engagements, rollup.organizations)
    contacts_by_organization: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for contact in documents.contacts:
        contacts_by_organization[rollup.organizations.organization_of(contact["domain"])].append(contact)
    for totals in rollup.organization_totals(documents.contacts, strongest):
        top = top_addresses(contacts_by_organization[totals["organization"]], scoring.top_addresses)
        documents.organizations.append(finish_organization(totals, top, scoring))
    documents.timeline.extend(rollup.organization_timeline())
    label_organizations(documents, rollup.organizations)


def window_organizations(rollup: OrganizationRollup, window_contacts: Iterable[Mapping[str, Any]],
                         stored_contacts: Mapping[tuple, Any]) -> dict[str, Any]:
    """The organisation figures of a window's new mail (no strengths yet), before they meet what is
    stored: `organizations`, the organisation months (`organization_timeline`) and, per
    organisation, how many of the window's contacts have no stored document (`new_addresses`)."""
    window_contacts = list(window_contacts)
    new_addresses: dict[str, int] = defaultdict(int)
    for contact in window_contacts:
        if (contact["email_address"],) not in stored_contacts:
            new_addresses[rollup.organizations.organization_of(contact["domain"])] += 1
    return {"organizations": rollup.organization_totals(window_contacts, {}),
            "organization_timeline": rollup.organization_timeline(), "new_addresses": dict(new_addresses)}


def _merge_connections(stored: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]],
                       strongest: Mapping[str, int]) -> list[dict[str, Any]]:
    merged = {entry["account"]: dict(entry) for entry in stored}
    for entry in new:
        current = merged.setdefault(entry["account"], connection_entry(entry["account"], 0, 0))
        current["total_count"] += entry["total_count"]
    for account, value in strongest.items():
        if account in merged:
            merged[account]["strength"] = max(merged[account]["strength"], value)
    return [merged[account] for account in sorted(merged)]


def add_organizations(new: Mapping[str, list[dict[str, Any]]], stored: Mapping[str, Mapping[tuple, Mapping[str, Any]]],
                      documents: DomainDocuments, organizations: Organizations, scoring: Scoring) -> None:
    """A window's organisation figures added to the stored organisation documents and months.

    `documents` are the window's per-domain documents already added to what is stored
    (`add_to_stored`): their contacts and engagements are the merged ones, so the organisation's
    top addresses and strongest relationships are taken from them. `stored` holds the stored
    organisation documents (`organizations`, keyed by `(organization,)`) and months (`timeline`).
    New contacts (no stored document) add to `addresses_count`, as on the domain documents.
    """
    strongest: dict[str, dict[str, int]] = defaultdict(dict)
    for (account, organization), value in _strongest_by_organization(documents.engagements, organizations).items():
        strongest[organization][account] = value
    contacts_by_organization: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for contact in documents.contacts:
        contacts_by_organization[organizations.organization_of(contact["domain"])].append(contact)
    new_addresses = new.get("new_addresses", {})
    for totals in new["organizations"]:
        organization = totals["organization"]
        previous = stored["organizations"].get((organization,))
        merged = dict(totals)
        candidates: dict[str, Mapping[str, Any]] = {}
        if previous is not None:
            merged["domains"] = sorted(set(previous["domains"]) | set(totals["domains"]))
            merged["domains_count"] = len(merged["domains"])
            merged["first_contact_date"] = min(previous["first_contact_date"], totals["first_contact_date"])
            merged["latest_contact_date"] = max(previous["latest_contact_date"], totals["latest_contact_date"])
            for name in ("total_from", "total_to", "total_cc", "total_emails"):
                merged[name] = previous[name] + totals[name]
            merged["accounts"] = sorted(set(previous["accounts"]) | set(totals["accounts"]))
            merged["accounts_count"] = len(merged["accounts"])
            merged["addresses_count"] = int(previous["addresses_count"]) + new_addresses.get(organization, 0)
            candidates = {entry["email_address"]: entry for entry in previous.get("email_engagements", ())}
            stored_connections = previous.get("account_connections", ())
        else:
            stored_connections = ()
        merged["account_connections"] = _merge_connections(
            stored_connections, totals["account_connections"], strongest[organization])
        for contact in contacts_by_organization[organization]:
            candidates[contact["email_address"]] = contact
        top = top_addresses(candidates.values(), scoring.top_addresses)
        documents.organizations.append(finish_organization(merged, top, scoring))
    for month in new["organization_timeline"]:
        previous = stored["timeline"].get(("organization", month["organization"], month["month"]))
        if previous is None:
            documents.timeline.append(dict(month))
            continue
        merged_month = dict(month)
        for name in ("messages",) + tuple(ROLE_COUNT_FIELDS.values()):
            merged_month[name] = previous[name] + month[name]
        documents.timeline.append(merged_month)
    label_organizations(documents, organizations)

