"""Erasure, the pure part: the request, the suppression list, and roles documents without the erased.

An erased address, every address of an erased domain, or every address of every host of an erased
organisation, is treated as absent from every source message, exactly like an address of an
internal domain (docs/SEMANTICS.md "Erasure"). The I/O is in
`mailforce.es.suppressions` and `mailforce.stages.erase`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterable, Mapping

from mailforce.core.addresses import domain_of, is_valid_domain, normalise_address
from mailforce.core.ids import document_id
from mailforce.core.roles import Message, message_from_roles_document, roles_document

KIND_ADDRESS = "address"
KIND_DOMAIN = "domain"
KIND_ORGANIZATION = "organization"
MAX_VALUES = 10_000  # addresses plus domains per request: an erasure names people, not mailboxes


class ErasureParamsError(ValueError):
    """A bad erasure request; the message says which value and why. Nothing was written."""


@dataclass(frozen=True)
class Suppressions:
    """The erased addresses, domains and organisations in force (empty: nothing erased).

    An erased organisation suppresses every host whose organisation it is (`organization_of`, the
    settings' `Organizations.organization_of`), also hosts first seen after the erasure."""

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    organizations: frozenset[str] = frozenset()
    organization_of: Callable[[str], str] | None = field(default=None, compare=False, repr=False)

    def __bool__(self) -> bool:
        return bool(self.addresses or self.domains or self.organizations)

    def suppresses(self, address: str) -> bool:
        if address in self.addresses:
            return True
        domain = domain_of(address)
        if domain in self.domains:
            return True
        if not self.organizations:
            return False
        if self.organization_of is None:
            raise ValueError("erased organisations need the organisation of each domain (organization_of)")
        return self.organization_of(domain) in self.organizations

    def with_organizations(self, organization_of: Callable[[str], str]) -> "Suppressions":
        return Suppressions(self.addresses, self.domains, self.organizations, organization_of)

    def __len__(self) -> int:
        return len(self.addresses) + len(self.domains) + len(self.organizations)


@dataclass(frozen=True)
class ErasureRequest:
    addresses: tuple[str, ...]
    domains: tuple[str, ...]
    reason: str
    requested_by: str
    requested_at: str
    erasure_id: str = ""
    organizations: tuple[str, ...] = ()
    people: tuple[str, ...] = ()  # an address of each person erased whole (their addresses join `addresses`)

    @property
    def suppressions(self) -> Suppressions:
        """The request's values (erased organisations need `with_organizations` before use)."""
        return Suppressions(frozenset(self.addresses), frozenset(self.domains), frozenset(self.organizations))

    def to_xcom(self) -> dict[str, Any]:
        return {"addresses": list(self.addresses), "domains": list(self.domains),
                "organizations": list(self.organizations), "reason": self.reason,
                "requested_by": self.requested_by, "requested_at": self.requested_at, "erasure_id": self.erasure_id,
                "people": list(self.people)}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "ErasureRequest":
        return cls(addresses=tuple(data["addresses"]), domains=tuple(data["domains"]), reason=data["reason"],
                   requested_by=data["requested_by"], requested_at=data["requested_at"],
                   erasure_id=data.get("erasure_id", ""), organizations=tuple(data.get("organizations") or ()),
                   people=tuple(data.get("people") or ()))


def _as_list(name: str, value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, str):  # a form's text box, or a comma/newline-separated conf value
        return [item for item in re.split(r"[,\s]+", value) if item]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ErasureParamsError(f"param {name!r} must be a list of strings, got {value!r}")


def normalised_domain(value: Any, name: str = "domains") -> str:
    if not isinstance(value, str):
        raise ErasureParamsError(f"param {name!r}: {value!r} is not a string")
    domain = value.strip().lower()
    if not is_valid_domain(domain):  # the pipeline's own rule for an address's domain (core/addresses.py)
        raise ErasureParamsError(f"param {name!r}: {value!r} is not a domain name (e.g. acme.com)")
    return domain


def normalised_address(value: Any, name: str = "addresses") -> str:
    if not isinstance(value, str):
        raise ErasureParamsError(f"param {name!r}: {value!r} is not a string")
    address = normalise_address(value)  # the pipeline's own normalisation: the erased form is the counted form
    if address is None:
        raise ErasureParamsError(f"param {name!r}: {value!r} is not an e-mail address (e.g. jane@acme.com)")
    return address


def parse_erasure_params(params: Mapping[str, Any], requested_at: str) -> ErasureRequest:
    """The form's values, checked before anything is written; raises ErasureParamsError."""
    addresses = sorted({normalised_address(value) for value in _as_list("addresses", params.get("addresses"))})
    domains = sorted({normalised_domain(value) for value in _as_list("domains", params.get("domains"))})
    organizations = sorted({normalised_domain(value, "organizations")
                            for value in _as_list("organizations", params.get("organizations"))})
    people = sorted({normalised_address(value, "people") for value in _as_list("people", params.get("people"))})
    if not addresses and not domains and not organizations and not people:
        raise ErasureParamsError("nothing to erase: give at least one address, person, domain or organisation")
    if len(addresses) + len(domains) + len(organizations) > MAX_VALUES:
        raise ErasureParamsError(f"at most {MAX_VALUES} addresses, domains and organisations per erasure, got "
                                 f"{len(addresses) + len(domains) + len(organizations)}")
    texts = {}
    for name in ("reason", "requested_by"):
        value = params.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ErasureParamsError(f"param {name!r} is required (who asks, and why, go in the audit record)")
        texts[name] = value.strip()
    parts = (*addresses, "|", *domains) + (("|", *organizations) if organizations else ())
    parts += ("|", "people", *people) if people else ()
    identifier = document_id("erasure", requested_at, *parts)
    return ErasureRequest(tuple(addresses), tuple(domains), texts["reason"], texts["requested_by"], requested_at,
                          erasure_id=identifier, organizations=tuple(organizations), people=tuple(people))


def with_people_addresses(request: ErasureRequest, addresses: Iterable[str]) -> ErasureRequest:
    """The request with every address of its people added to the erased addresses."""
    from dataclasses import replace

    return replace(request, addresses=tuple(sorted({*request.addresses, *addresses})))


def suppression_documents(request: ErasureRequest) -> list[tuple[str, dict[str, Any]]]:
    """(id, document) per erased value; the id is from (kind, value): recording twice is one record."""
    documents = []
    for kind, values in ((KIND_ADDRESS, request.addresses), (KIND_DOMAIN, request.domains),
                         (KIND_ORGANIZATION, request.organizations)):
        for value in values:
            documents.append((suppression_id(kind, value), {
                "kind": kind, "value": value, "reason": request.reason, "requested_by": request.requested_by,
                "requested_at": request.requested_at, "erasure_id": request.erasure_id,
            }))
    return documents


def suppression_id(kind: str, value: str) -> str:
    return document_id("suppression", kind, value)


def suppressions_of(documents: Iterable[Mapping[str, Any]],
                    organization_of: Callable[[str], str] | None = None) -> Suppressions:
    values: dict[str, set[str]] = {KIND_ADDRESS: set(), KIND_DOMAIN: set(), KIND_ORGANIZATION: set()}
    for document in documents:
        kind = document.get("kind")
        values[kind if kind in values else KIND_DOMAIN].add(document.get("value"))
    return Suppressions(frozenset(values[KIND_ADDRESS]), frozenset(values[KIND_DOMAIN]),
                        frozenset(values[KIND_ORGANIZATION]), organization_of)


@dataclass
class ErasedMessage:
    """A roles document after erasure: rewritten (`document`), or gone (`document is None`)."""

    document: dict[str, Any] | None
    removed_entries: int
    domains_before: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def erased_roles_document(document: Mapping[str, Any], suppressions: Suppressions, updated_at: str
                          ) -> ErasedMessage:
    """The roles document without the erased addresses (domains, per-role lists, message_roles and
    automated_addresses recomputed); None when no address is left. Keeps run_id and key_date (the
    stage moves key dates of all copies afterwards)."""
    message: Message = message_from_roles_document(document)
    kept = {(address, role) for address, role in message.roles if not suppressions.suppresses(address)}
    removed = len(message.roles) - len(kept)
    before = tuple(document.get("domains") or ())
    if not kept:
        return ErasedMessage(None, removed, before)
    message.roles = kept
    message.automated = {address for address in message.automated if not suppressions.suppresses(address)}
    message.senders = {address for address in message.senders if not suppressions.suppresses(address)}
    message.recipients = {address for address in message.recipients if not suppressions.suppresses(address)}
    return ErasedMessage(roles_document(message, updated_at, document.get("run_id", "")), removed, before)


def audit_document(request: ErasureRequest, removed: Mapping[str, int], rewritten: Mapping[str, int],
                   indices: Mapping[str, str], affected_domains: int, affected_accounts: int, finished_at: str,
                   duration_seconds: float) -> dict[str, Any]:
    """The audit record: who asked, when, why, what, and what was removed per index (counts)."""
    return {
        "erasure_id": request.erasure_id,
        "requested_by": request.requested_by,
        "requested_at": request.requested_at,
        "reason": request.reason,
        "addresses": list(request.addresses),
        "domains": list(request.domains),
        "organizations": list(request.organizations),
        "people": list(request.people),
        "removed": dict(removed),
        "rewritten": dict(rewritten),
        "indices": dict(indices),
        "removed_total": sum(removed.values()),
        "affected_domains": affected_domains,
        "affected_accounts": affected_accounts,
        "finished_at": finished_at,
        "duration_seconds": round(duration_seconds, 3),
    }


@dataclass(frozen=True)
class ErasedRoles:
    """What `erase_message_roles` did: the domains and accounts to recompute, and counts."""

    domains: tuple[str, ...] = ()  # sorted
    accounts: tuple[str, ...] = ()  # sorted
    roles_rewritten: int = 0  # roles documents rewritten without erased entries, or with a moved key date
    roles_deleted: int = 0  # left with no address
    entries_removed: int = 0
    key_dates_moved: int = 0
    changes_deleted: int = 0  # change-feed documents of the erased addresses and domains

    def to_xcom(self) -> dict[str, Any]:
        return {**asdict(self), "domains": list(self.domains), "accounts": list(self.accounts)}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "ErasedRoles":
        return cls(**{**{name.name: data[name.name] for name in fields(cls) if name.name in data},
                      "domains": tuple(data.get("domains") or ()), "accounts": tuple(data.get("accounts") or ())})


@dataclass(frozen=True)
class RecomputedOutputs:
    """What `recompute_outputs` did: documents written and removed per compiled kind."""

    written: Mapping[str, int] = field(default_factory=dict)
    removed: Mapping[str, int] = field(default_factory=dict)

    def to_xcom(self) -> dict[str, Any]:
        return {"written": dict(self.written), "removed": dict(self.removed)}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "RecomputedOutputs":
        return cls(written=dict(data.get("written") or {}), removed=dict(data.get("removed") or {}))
