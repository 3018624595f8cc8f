"""The typed records that travel between stages through XCom (pure).

Each has one `to_xcom()` (a small JSON dict, the shape the DAG's XCom has always carried) and one
`from_xcom()`; no stage reads another stage's dict by key. The partition plan's own records
(`Partition`, `DomainShard`) live with the planner in `mailforce.core.partitions`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Mapping

from mailforce.core.dates import format_utc, parse_source_date
from mailforce.core.ids import document_id
from mailforce.core.kinds import CHANGES, COMPILED_KIND_NAMES, KIND_BY_NAME
from mailforce.core.roles import ExtractionCounts
from mailforce.core.window import Window


@dataclass(frozen=True)
class FetchedWindow:
    """What `fetch_watermark` fixes for the whole run: the window, when the run started, and per
    account param the account ids the source does not hold (a warning the run summary repeats)."""

    window: Window
    run_started: datetime
    unknown_accounts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_xcom(self) -> dict[str, Any]:
        return {**self.window.to_xcom(), "run_started": format_utc(self.run_started),
                "unknown_accounts": {param: list(names) for param, names in self.unknown_accounts.items()}}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "FetchedWindow":
        run_started = parse_source_date(data.get("run_started"))
        assert run_started is not None, "fetch_watermark always records when the run started"
        unknown = {param: tuple(names) for param, names in (data.get("unknown_accounts") or {}).items()}
        return cls(window=Window.from_xcom(data), run_started=run_started, unknown_accounts=unknown)


@dataclass(frozen=True)
class ExtractionSummary:
    """What `extract_message_roles` saw and wrote; the work per domain drives the partitioning."""

    messages: int = 0  # counted by this run: new, changed or late
    accounts: tuple[str, ...] = ()  # sorted: of the counted messages (their statistics are rewritten)
    work_by_domain: Mapping[str, int] = field(default_factory=dict)
    recompute_domains: tuple[str, ...] = ()  # sorted: a message of theirs some run already counted
    role_entries: Mapping[str, int] = field(default_factory=dict)
    roles_written: int = 0
    undated_source_documents: int = 0
    counts: ExtractionCounts = field(default_factory=ExtractionCounts)
    unchanged_messages: int = 0  # counted before by a successful run, unchanged: looked up only
    late_messages: int = 0  # counted now, dated at or before the window start (or found by reconciliation)
    late_accounts: tuple[str, ...] = ()  # sorted
    late_days: tuple[str, ...] = ()  # sorted UTC days (YYYY-MM-DD), at most 100
    late_days_count: int = 0  # every late day, however many are listed
    # the counted messages plus the window's unchanged ones (`emails_processed`), and their accounts
    processed_messages: int = 0
    processed_accounts_count: int = 0
    future_dated_messages: int = 0  # source documents of the run's accounts dated after the window end
    future_dated_max_date: str | None = None  # the latest such date (how far ahead)
    ledger_written: int = 0
    # new copies of messages other mailboxes had counted: added to per-account figures only
    counted_elsewhere: int = 0
    # accounts of the window's unchanged messages that counted none (with `accounts`: the processed
    # accounts; slices' summaries unite them, `mailforce.core.extraction_slices`)
    unchanged_accounts: tuple[str, ...] = ()
    # sorted: accounts with a roles document that was stored before this run and that it counted
    # again (changed, or written by a run that did not succeed) or moved the key date of. Every other
    # account's roles documents this run wrote are new ones: its owner evidence adds them
    # (`mailforce.es.owners`); these accounts' evidence is counted over all their messages.
    rewritten_accounts: tuple[str, ...] = ()

    @property
    def accounts_count(self) -> int:
        return len(self.accounts)

    @property
    def domains_count(self) -> int:
        return len(self.work_by_domain)

    def to_xcom(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "accounts": list(self.accounts),
            "accounts_count": self.accounts_count,
            "work_by_domain": dict(self.work_by_domain),
            "recompute_domains": list(self.recompute_domains),
            "domains_count": self.domains_count,
            "role_entries": dict(self.role_entries),
            "roles_written": self.roles_written,
            "undated_source_documents": self.undated_source_documents,
            "counts": asdict(self.counts),
            "unchanged_messages": self.unchanged_messages,
            "late_messages": self.late_messages,
            "late_accounts": list(self.late_accounts),
            "late_days": list(self.late_days),
            "late_days_count": self.late_days_count,
            "processed_messages": self.processed_messages,
            "processed_accounts_count": self.processed_accounts_count,
            "future_dated_messages": self.future_dated_messages,
            "future_dated_max_date": self.future_dated_max_date,
            "ledger_written": self.ledger_written,
            "counted_elsewhere": self.counted_elsewhere,
            "unchanged_accounts": list(self.unchanged_accounts),
            "rewritten_accounts": list(self.rewritten_accounts),
        }

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "ExtractionSummary":
        return cls(
            messages=data["messages"],
            accounts=tuple(data["accounts"]),
            work_by_domain=dict(data["work_by_domain"]),
            recompute_domains=tuple(data.get("recompute_domains", ())),
            role_entries=dict(data.get("role_entries", {})),
            roles_written=data["roles_written"],
            undated_source_documents=data["undated_source_documents"],
            counts=ExtractionCounts(**data["counts"]),
            unchanged_messages=data.get("unchanged_messages", 0),
            late_messages=data.get("late_messages", 0),
            late_accounts=tuple(data.get("late_accounts", ())),
            late_days=tuple(data.get("late_days", ())),
            late_days_count=data.get("late_days_count", len(data.get("late_days", ()))),
            processed_messages=data.get("processed_messages", data["messages"]),
            processed_accounts_count=data.get("processed_accounts_count", len(data["accounts"])),
            future_dated_messages=data.get("future_dated_messages", 0),
            future_dated_max_date=data.get("future_dated_max_date"),
            ledger_written=data.get("ledger_written", 0),
            counted_elsewhere=data.get("counted_elsewhere", 0),
            unchanged_accounts=tuple(data.get("unchanged_accounts", ())),
            rewritten_accounts=tuple(data.get("rewritten_accounts", ())),
        )


# What a compile (and the rescoring) writes, declared in `mailforce.core.kinds`: the compiled kinds, and
# the change feed's crossings of the relationships they change.
WRITTEN_KINDS = COMPILED_KIND_NAMES + (CHANGES.name,)
KIND_NOUNS = {kind: KIND_BY_NAME[kind].noun for kind in WRITTEN_KINDS}


@dataclass(frozen=True)
class WrittenCounts:
    """Roles documents read and output documents written per compiled kind (`WRITTEN_KINDS`); they add
    up. Its XCom form is flat: ``roles_read`` and ``<kind>_written`` per kind."""

    roles_read: int = 0
    by_kind: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, roles_read: int, written: Mapping[str, int]) -> "WrittenCounts":
        return cls(roles_read, {kind: int(written.get(kind, 0)) for kind in WRITTEN_KINDS})

    def count(self, kind: str) -> int:
        """Documents of `kind` written."""
        return int(self.by_kind.get(kind, 0))

    def __add__(self, other: "WrittenCounts") -> "WrittenCounts":
        return WrittenCounts(self.roles_read + other.roles_read,
                             {kind: self.count(kind) + other.count(kind) for kind in WRITTEN_KINDS})

    @property
    def documents_written(self) -> int:
        return sum(self.count(kind) for kind in WRITTEN_KINDS)

    def describe(self) -> str:
        """`12 relationships, 1 contact` (or `nothing: every document was already up to date`)."""
        from mailforce.core.wording import plural

        parts = [plural(self.count(kind), KIND_NOUNS[kind]) for kind in WRITTEN_KINDS if self.count(kind)]
        return ", ".join(parts) if parts else "nothing (every document was already up to date)"

    def to_xcom(self) -> dict[str, int]:
        return {"roles_read": self.roles_read, **{f"{kind}_written": self.count(kind) for kind in WRITTEN_KINDS}}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "WrittenCounts":
        return cls(int(data.get("roles_read", 0)),
                   {kind: int(data.get(f"{kind}_written", 0)) for kind in WRITTEN_KINDS})


@dataclass(frozen=True)
class CompileResult:
    """One mapped `compile_domain_partition`: what it read and wrote."""

    label: str = ""
    written: WrittenCounts = field(default_factory=WrittenCounts)

    def to_xcom(self) -> dict[str, Any]:
        return {"label": self.label, **self.written.to_xcom()}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "CompileResult":
        return cls(label=data.get("label", ""), written=WrittenCounts.from_xcom(data))


@dataclass(frozen=True)
class RescoreResult:
    """What `rescore_relationships` did: the scoring date, and how many scores time changed."""

    scoring_date: str = ""  # YYYY-MM-DD
    rescored: bool = False  # False: the scoring date had not moved, nothing was read
    relationships_read: int = 0
    relationships_written: int = 0
    contacts_written: int = 0
    engagements_written: int = 0
    domains_written: int = 0
    changes_written: int = 0  # crossings of a strength band the rescoring recorded

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "RescoreResult":
        return cls(**{name.name: data[name.name] for name in fields(cls) if name.name in data})


@dataclass(frozen=True)
class PeopleResult:
    """What `compile_people` (or an alias change, or an erasure) did to the person documents."""

    addresses_read: int = 0  # addresses whose persons were recomputed
    people_written: int = 0
    people_deleted: int = 0
    addresses_relabelled: int = 0  # contacts and relationships given another `person_id`

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any] | None) -> "PeopleResult":
        return cls(**{name.name: int(data[name.name]) for name in fields(cls) if name.name in (data or {})})


@dataclass(frozen=True)
class RunStats:
    """The runtime-stats record of one successful run; its XCom form is the document itself."""

    document: Mapping[str, Any]

    @property
    def identifier(self) -> str:
        """The run id's: a re-publish overwrites."""
        return document_id(self.document["run_id"])

    def to_xcom(self) -> dict[str, Any]:
        return dict(self.document)

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "RunStats":
        return cls(document=dict(data))
