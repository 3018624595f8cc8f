"""Every setting in one frozen dataclass, read and validated once.

Values come from environment variables named ``MAILFORCE_<FIELD>`` (upper case), or from the Airflow
Variable ``mailforce_settings`` (a JSON object keyed by field name); the environment wins. Lists are
comma-separated in the environment. A wrong value is reported by its name.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, fields
from typing import Any, Mapping

VARIABLE_NAME = "mailforce_settings"
ENV_PREFIX = "MAILFORCE_"


class SettingsError(ValueError):
    """A setting has a wrong value; the message names it."""


@dataclass(frozen=True)
class Settings:
    conn_id: str = "elasticsearch_default"
    source_index: str = "search-shinobi-email"
    roles_index: str = "search-message-roles"
    engagements_index: str = "search-accounts-engagements"
    account_stats_index: str = "search-accounts_statistics_simple"
    domains_index: str = "search-domains-engagements"
    runtime_stats_index: str = "search-runtime-stats"
    relationships_index: str = "search-relationships"
    contacts_index: str = "search-contacts"
    timeline_index: str = "search-engagement-timeline"
    organizations_index: str = "search-organizations"
    people_index: str = "search-people"  # one document per person (their addresses together)
    changes_index: str = "search-relationship-changes"  # the change feed: one document per band crossing
    internal_domains: tuple[str, ...] = ()
    allowed_domains: tuple[str, ...] = ()
    # Organisations (docs/SEMANTICS.md, "Organisations"): whole organisations internal or allowed (every
    # host under them), and the operator's `host=organization` overrides of the Public Suffix List
    internal_organizations: tuple[str, ...] = ()
    allowed_organizations: tuple[str, ...] = ()
    organization_overrides: tuple[str, ...] = ()
    max_partitions: int = 8
    min_partition_work: int = 5_000  # role entries per partition, at least, before adding another
    # Extraction slices (mapped `extract_message_roles`, by message id): at most this many per run ...
    max_extraction_slices: int = 8
    # ... and one per this many source documents of the window, at least (an hourly run is one slice)
    min_slice_documents: int = 100_000
    scan_page_size: int = 2000
    # Bulk requests: at most this many documents and this many bytes each (docs/BENCHMARK.md, "Overwrites
    # cost per request": few large requests, far below a cluster's http.max_content_length).
    bulk_chunk_size: int = 10_000
    bulk_chunk_bytes: int = 10 * 1024 * 1024
    lookup_batch_size: int = 1000
    scroll_keep_alive: str = "5m"
    schedule: str | None = "@hourly"
    index_shards: int = 1
    index_replicas: int = 1
    domain_top_addresses: int = 100  # address entries listed on a domain document
    strength_half_life_days: int = 90  # recency in relationship strength halves every this many days
    # Strength bands of the change feed (docs/SEMANTICS.md): strong from, warm from, cooling from; below: cold
    strength_band_strong: int = 60
    strength_band_warm: int = 30
    strength_band_cooling: int = 10
    # The example digest DAG (`mailforce_cold_digest`): an HTTP connection to post each account's digest to
    # (a Slack or CRM webhook; empty: the task log only)
    digest_webhook_conn_id: str = ""
    automated_patterns: tuple[str, ...] = ()  # replaces the default patterns when set
    automated_patterns_extra: tuple[str, ...] = ()  # added to the default patterns
    # Conversations (docs/SEMANTICS.md): each mailbox's own addresses, `account=address` entries (an
    # account not named is inferred from its mail) ...
    account_addresses: tuple[str, ...] = ()
    # ... and robots by behaviour: at least this many messages, each to at least this many recipients,
    # never written to by any mailbox's owner
    broadcast_min_messages: int = 20
    broadcast_min_audience: int = 10
    # Late mail (docs/LATE_MAIL.md): an ingestion-time field of the source to window on (empty: off) ...
    arrival_field: str = ""
    # ... else how far below the watermark each scheduled run re-reads on `date` ("30m", "6h", "2d", "0")
    allowed_lateness: str = "6h"
    ledger_index: str = "search-mailforce-ledger"  # one record per (account, message) counted
    reconcile_schedule: str = "@daily"  # the reconciliation DAG's schedule ("none": only when triggered)
    # One run at a time across the DAGs (docs/LATE_MAIL.md, "One run at a time across the DAGs"): the lease document's index, how
    # long a run waits for another to finish, and when a holder Airflow cannot report on is presumed gone
    lease_index: str = "search-mailforce-lease"
    lease_wait: str = "1h"
    lease_ttl: str = "7h"
    # Erasure (docs/ERASURE.md): erased addresses and domains, honoured by every run; and the audit trail
    suppressions_index: str = "search-mailforce-suppressions"
    erasure_audit_index: str = "search-mailforce-erasure-audit"
    # People (docs/SEMANTICS.md, "People"): the operator's alias list, and the audit of its changes
    aliases_index: str = "search-mailforce-aliases"
    aliases_audit_index: str = "search-mailforce-aliases-audit"

    def __post_init__(self) -> None:
        for name in ("max_partitions", "min_partition_work", "max_extraction_slices", "min_slice_documents",
                     "domain_top_addresses", "strength_half_life_days", "scan_page_size", "bulk_chunk_size",
                     "bulk_chunk_bytes", "lookup_batch_size", "index_shards", "broadcast_min_messages",
                     "broadcast_min_audience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SettingsError(f"setting {name!r} must be a whole number >= 1, got {value!r}")
        try:
            self.strength_bands
        except ValueError as error:
            raise SettingsError(f"settings 'strength_band_strong', 'strength_band_warm', 'strength_band_cooling': "
                                f"{error}") from None
        if not isinstance(self.index_replicas, int) or self.index_replicas < 0:
            raise SettingsError(f"setting 'index_replicas' must be a whole number >= 0, got {self.index_replicas!r}")
        for pattern in self.automated_patterns + self.automated_patterns_extra:
            try:
                re.compile(pattern)
            except re.error as error:
                raise SettingsError(f"setting 'automated_patterns': {pattern!r} is not a regular expression ({error})") from None
        from mailforce.core.run_params import parse_duration  # pure; validates the lateness once

        for name in ("allowed_lateness", "lease_wait", "lease_ttl"):
            try:
                parse_duration(getattr(self, name))
            except ValueError as error:
                raise SettingsError(f"setting {name!r}: {error}") from None
        if self.max_partitions > 1024:
            raise SettingsError("setting 'max_partitions' must be at most 1024")
        if self.max_extraction_slices > 1024:
            raise SettingsError("setting 'max_extraction_slices' must be at most 1024")
        names = [getattr(self, f.name) for f in fields(self) if f.name.endswith("_index")]
        for index_name in names:
            if not isinstance(index_name, str) or not index_name or index_name != index_name.lower() or " " in index_name:
                raise SettingsError(f"index names must be non-empty lower-case strings, got {index_name!r}")
        if len(set(names)) != len(names):
            raise SettingsError("index settings must name different indices")
        from mailforce.core.addresses import is_valid_domain  # pure: the rule for an address's domain
        from mailforce.core.organizations import parse_overrides

        try:
            pairs = parse_overrides(self.organization_overrides)
        except ValueError as error:
            raise SettingsError(f"setting 'organization_overrides': {error}") from None
        object.__setattr__(self, "organization_overrides", tuple(f"{host}={organization}" for host, organization in pairs))
        for host, organization in pairs:
            for domain in (host, organization):
                if not is_valid_domain(domain):
                    raise SettingsError(f"setting 'organization_overrides': {domain!r} is not a domain "
                                        "(two or more non-empty labels separated by dots), e.g. 'abag.ca.gov=abag.ca.gov'")
        for name in ("internal_domains", "allowed_domains", "internal_organizations", "allowed_organizations"):
            # Case and surrounding spaces are normalised as addresses are (`Acme.COM ` -> `acme.com`);
            # anything else that is not a domain is refused, `@acme.com` and `jim@acme.com` included.
            domains = tuple(sorted({str(domain).strip().lower() for domain in getattr(self, name)}))
            object.__setattr__(self, name, domains)
            for domain in domains:
                if not is_valid_domain(domain):
                    hint = f"write it without '@': {domain.rpartition('@')[2]!r}" if "@" in domain else "e.g. 'acme.com'"
                    raise SettingsError(
                        f"setting {name!r}: {domain!r} is not a domain (two or more non-empty labels separated by "
                        f"dots, no spaces, no '@'; {hint}); fix MAILFORCE_{name.upper()} or the key {name!r} of "
                        f"the Variable {VARIABLE_NAME!r}")

        self.owner_addresses_by_account  # refuses a malformed `account_addresses` entry, naming the setting

    @property
    def owner_addresses_by_account(self) -> dict[str, frozenset[str]]:
        """`account_addresses` as account -> its own addresses (`dean-c=craig.dean@enron.com`)."""
        from mailforce.core.addresses import normalise_address

        owners: dict[str, set[str]] = {}
        for entry in self.account_addresses:
            account, equals, raw = str(entry).partition("=")
            address = normalise_address(raw) if equals else None
            if not account.strip() or address is None:
                raise SettingsError(
                    f"setting 'account_addresses': {entry!r} is not `account=address` (e.g. "
                    f"'dean-c=craig.dean@enron.com'); fix MAILFORCE_ACCOUNT_ADDRESSES or the key "
                    f"'account_addresses' of the Variable {VARIABLE_NAME!r}")
            owners.setdefault(account.strip(), set()).add(address)
        return {account: frozenset(addresses) for account, addresses in owners.items()}

    @property
    def output_indices(self) -> tuple[str, ...]:
        """Every output index, in the order of `mailforce.core.kinds.OUTPUT_KINDS`."""
        from mailforce.core.kinds import OUTPUT_KINDS

        return tuple(kind.index(self) for kind in OUTPUT_KINDS)

    def index_setting(self, index: str) -> str:
        """The name of the setting that names `index` (e.g. `domains_index`), for messages."""
        return next(f.name for f in fields(self) if f.name.endswith("_index") and getattr(self, f.name) == index)

    @property
    def bulk_chunk(self) -> tuple[int, int]:
        """(documents, bytes) per bulk request, for `mailforce.es.writes.bulk_write`."""
        return self.bulk_chunk_size, self.bulk_chunk_bytes

    @property
    def strength_bands(self):
        """The change feed's bands (`mailforce.core.changes.Bands`) from the three band settings."""
        from mailforce.core.changes import Bands  # pure

        return Bands(strong_from=self.strength_band_strong, warm_from=self.strength_band_warm,
                     cooling_from=self.strength_band_cooling)

    @property
    def automated_address_patterns(self) -> tuple[str, ...]:
        """The patterns in force: the setting when given, else the documented defaults, plus extras."""
        from mailforce.core.automated import DEFAULT_AUTOMATED_PATTERNS

        base = self.automated_patterns or DEFAULT_AUTOMATED_PATTERNS
        return tuple(base) + tuple(self.automated_patterns_extra)

    @property
    def organizations(self):
        """The organisation of each domain: the Public Suffix List and `organization_overrides`."""
        from mailforce.core.organizations import Organizations, parse_overrides

        cached = self.__dict__.get("_organizations")
        if cached is None:
            cached = Organizations(parse_overrides(self.organization_overrides))
            object.__setattr__(self, "_organizations", cached)
        return cached

    def domain_in_scope(self, domain: str) -> bool:
        if domain in self.internal_domains:
            return False
        if self.internal_organizations and self.organizations.organization_of(domain) in self.internal_organizations:
            return False
        if not self.allowed_domains and not self.allowed_organizations:
            return True
        return domain in self.allowed_domains or (
            bool(self.allowed_organizations) and self.organizations.organization_of(domain) in self.allowed_organizations)


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Turn a raw value (string from the environment, or JSON) into the field's type."""
    if isinstance(default, tuple):
        keep_case = str if name == "account_addresses" else str.lower  # account ids are used as stored
        if isinstance(value, str):
            items = [keep_case(item.strip()) for item in value.split(",")]
        elif isinstance(value, (list, tuple)):
            items = [keep_case(str(item).strip()) for item in value]
        else:
            raise SettingsError(f"setting {name!r} must be a list, got {value!r}")
        return tuple(sorted({item for item in items if item}))
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"setting {name!r} must be a whole number, got {value!r}") from None
    if name == "schedule":
        if value in (None, "", "none", "None", "null"):
            return None
        return str(value)
    if not isinstance(value, str):
        raise SettingsError(f"setting {name!r} must be a string, got {value!r}")
    return value


def settings_from_mapping(values: Mapping[str, Any]) -> Settings:
    known = {f.name: f.default for f in fields(Settings)}
    unknown = set(values) - set(known)
    if unknown:
        raise SettingsError(f"unknown settings: {sorted(unknown)}")
    return Settings(**{name: _coerce(name, value, known[name]) for name, value in values.items()})


def _variable_values() -> dict[str, Any]:
    raw = os.environ.get(f"AIRFLOW_VAR_{VARIABLE_NAME.upper()}")
    if raw is None:
        try:
            from airflow.sdk import Variable

            raw = Variable.get(VARIABLE_NAME, default=None)
        except Exception:  # no Airflow context (plain scripts, tests): environment only
            raw = None
    if not raw:
        return {}
    try:
        values = json.loads(raw)
    except ValueError as error:
        raise SettingsError(f"Variable {VARIABLE_NAME!r} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise SettingsError(f"Variable {VARIABLE_NAME!r} must be a JSON object")
    return values


def load_settings(environ: Mapping[str, str] | None = None, use_variable: bool = True) -> Settings:
    """Settings from the Airflow Variable, overridden by ``MAILFORCE_*`` environment variables."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = _variable_values() if use_variable else {}
    known = {f.name for f in fields(Settings)}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX):].lower()
            if name not in known:
                raise SettingsError(f"unknown setting in environment: {key}")
            values[name] = value
    return settings_from_mapping(values)
