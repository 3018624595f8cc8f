"""A window's extraction split into slices by message id, and the slices' summaries merged (pure).

Why by message id: every cross-mailbox rule of the extraction (one key_date per message id, a copy
`counted_elsewhere`, the domains to recompute when another mailbox had counted the message) looks at
all copies of one message id together: the copies this window holds (the scan's sort brings them
together) and those earlier runs stored (looked up by message id). A slice is a range of message ids,
`lower <= messageId < upper`, so a message's copies in every mailbox fall in one slice, and what one
slice reads or writes (roles documents, ledger records, both keyed by account and message id) no other
slice of the same run touches. Each slice is then exactly the single extraction restricted to its
message ids, and the slices' union is the whole window: exact with any number of slices.

Source documents without a messageId (each a message by itself, keyed by its document id) go to the
last slice. A multi-valued messageId (not a Message-ID, but a source may hold one) matches the range
of every slice holding one of its values; it belongs to the slice of its smallest value (the value
the scan sorts it by), and the others drop it (`ExtractionSlice.owns`).

The account statistics of a run are split the same way, one task per slice (an hourly run: one): each
slice also carries a range of account ids, `accounts_from <= account < accounts_to`, cut at the
quantiles of the accounts of the same sample, and writes the statistics of the run's accounts in it
(`ExtractionSlice.owns_account`); the ranges cover every account id once.

How many: `slice_count` from the window's source documents (a count first), at most the setting
`max_extraction_slices`, one per `min_slice_documents` (an hourly run is one slice). Where the
boundaries go: quantiles of a sample of the window's message ids (`plan_slices`); a skewed sample
unbalances the slices, never the figures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

from mailforce.core.extraction import MAX_REPORTED_LATE_DAYS
from mailforce.core.roles import ExtractionCounts
from mailforce.core.summaries import ExtractionSummary

MESSAGE_ID_FIELD = "messageId"


@dataclass(frozen=True)
class ExtractionSlice:
    """Message ids `lower <= id < upper` (None: unbounded); the last slice also holds documents
    without a messageId."""

    number: int = 1  # 1-based, for people
    of: int = 1
    lower: str | None = None
    upper: str | None = None
    accounts_from: str | None = None  # the account statistics this slice's task writes: from (inclusive) ...
    accounts_to: str | None = None  # ... to (exclusive); None: unbounded

    @property
    def whole(self) -> bool:
        return self.of == 1

    @property
    def label(self) -> str:
        """What a mapped extraction instance covers, for the Airflow UI."""
        if self.whole:
            return "1/1 every message"
        low = "start" if self.lower is None else _short(self.lower)
        high = "end" if self.upper is None else _short(self.upper)
        return f"{self.number}/{self.of} message ids {low} .. {high}"

    def query(self, window_query: Mapping[str, Any]) -> dict[str, Any]:
        """The window's source query restricted to this slice's message ids."""
        if self.whole:
            return dict(window_query)
        bounds: dict[str, str] = {}
        if self.lower is not None:
            bounds["gte"] = self.lower
        if self.upper is not None:
            bounds["lt"] = self.upper
        in_range: dict[str, Any] = {"range": {MESSAGE_ID_FIELD: bounds}} if bounds else {"exists": {"field": MESSAGE_ID_FIELD}}
        if self.upper is None:  # the last slice: also the documents without a messageId
            clause: dict[str, Any] = {"bool": {"should": [
                in_range, {"bool": {"must_not": [{"exists": {"field": MESSAGE_ID_FIELD}}]}}],
                "minimum_should_match": 1}}
        else:
            clause = in_range
        return {"bool": {"filter": [window_query, clause]}}

    def owns(self, hit: Mapping[str, Any]) -> bool:
        """Whether a hit this slice's query returned is this slice's (only a multi-valued messageId,
        matched by several slices, can be another's: it is the slice's of its smallest value)."""
        if self.whole:
            return True
        value = (hit.get("_source") or {}).get(MESSAGE_ID_FIELD)
        if not isinstance(value, list):
            return True
        values = [item for item in value if isinstance(item, str)]
        if not values:
            return self.upper is None
        smallest = min(values)
        return (self.lower is None or smallest >= self.lower) and (self.upper is None or smallest < self.upper)

    def owns_account(self, account: str) -> bool:
        """Whether this slice's task writes the statistics of this account."""
        return ((self.accounts_from is None or account >= self.accounts_from)
                and (self.accounts_to is None or account < self.accounts_to))

    @property
    def accounts_label(self) -> str:
        """The account range, for the Airflow UI (the statistics task's map index)."""
        if self.accounts_from is None and self.accounts_to is None:
            return f"{self.number}/{self.of} every account"
        if self.accounts_from == "" and self.accounts_to == "":
            return f"{self.number}/{self.of} no account"
        return (f"{self.number}/{self.of} accounts {'start' if self.accounts_from is None else _short(self.accounts_from)}"
                f" .. {'end' if self.accounts_to is None else _short(self.accounts_to)}")

    def to_xcom(self) -> dict[str, Any]:
        return {"number": self.number, "of": self.of, "lower": self.lower, "upper": self.upper,
                "accounts_from": self.accounts_from, "accounts_to": self.accounts_to, "label": self.label,
                "accounts_label": self.accounts_label}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any] | None) -> "ExtractionSlice":
        if not data:
            return cls()
        return cls(number=int(data["number"]), of=int(data["of"]), lower=data.get("lower"), upper=data.get("upper"),
                   accounts_from=data.get("accounts_from"), accounts_to=data.get("accounts_to"))


WHOLE_WINDOW = ExtractionSlice()


def _short(message_id: str, length: int = 18) -> str:
    return message_id if len(message_id) <= length else message_id[:length] + "…"


def slice_count(source_documents: int, max_slices: int, min_slice_documents: int) -> int:
    """One slice per `min_slice_documents` source documents of the window, at least 1, at most `max_slices`."""
    return max(1, min(max_slices, source_documents // max(min_slice_documents, 1)))


def _quantiles(values: Sequence[str], count: int) -> list[str]:
    """Up to `count - 1` increasing cut points of sorted `values` (duplicates weigh as often as they occur)."""
    cuts: list[str] = []
    for number in range(1, count):
        candidate = values[min(len(values) - 1, (len(values) * number) // count)]
        if candidate != values[0] and (not cuts or candidate > cuts[-1]):
            cuts.append(candidate)
    return cuts


def plan_slices(sample: Iterable[str], count: int, accounts: Iterable[str] = ()) -> list[ExtractionSlice]:
    """`count` slices (fewer when the sample has fewer distinct ids) bounded at the sample's quantiles;
    their account ranges at the quantiles of the sampled documents' accounts."""
    ids = sorted({value for value in sample if isinstance(value, str)})
    if count <= 1 or len(ids) < 2:
        return [WHOLE_WINDOW]
    boundaries = _quantiles(ids, count)
    return slices_between(boundaries, _quantiles(sorted(a for a in accounts if isinstance(a, str)), len(boundaries) + 1)
                          if accounts else ())


def slices_between(boundaries: Sequence[str], account_cuts: Sequence[str] = ()) -> list[ExtractionSlice]:
    """The slices cut at these increasing message ids (none: one slice, the whole window); the
    account cuts (at most one fewer than the slices) split the account statistics among them."""
    if not boundaries:
        return [WHOLE_WINDOW]
    edges: list[str | None] = [None, *boundaries, None]
    count = len(edges) - 1
    cuts = list(account_cuts)[:count - 1]
    ranges: list[tuple[str | None, str | None]] = list(zip([None, *cuts], [*cuts, None]))
    ranges += [("", "")] * (count - len(ranges))  # more slices than account ranges: these write none
    return [ExtractionSlice(number=number + 1, of=count, lower=edges[number], upper=edges[number + 1],
                            accounts_from=ranges[number][0], accounts_to=ranges[number][1])
            for number in range(count)]


def merge_extractions(summaries: Sequence[ExtractionSummary]) -> ExtractionSummary:
    """The whole window's summary from its slices' (disjoint message ids, so their figures add up;
    accounts and days are united). One summary is returned as it is."""
    if len(summaries) == 1:
        return summaries[0]
    if not summaries:
        return ExtractionSummary()
    work: dict[str, int] = {}
    roles: dict[str, int] = {}
    for summary in summaries:
        for domain, value in summary.work_by_domain.items():
            work[domain] = work.get(domain, 0) + value
        for role, value in summary.role_entries.items():
            roles[role] = roles.get(role, 0) + value
    counts = ExtractionCounts(**{name: sum(getattr(summary.counts, name) for summary in summaries)
                                 for name in ExtractionCounts.__dataclass_fields__})
    accounts = sorted({account for summary in summaries for account in summary.accounts})
    processed_accounts = set(accounts) | {account for summary in summaries for account in summary.unchanged_accounts}
    late_days = sorted({day for summary in summaries for day in summary.late_days})  # a slice lists all
    future = [summary for summary in summaries if summary.future_dated_messages]
    total = sum_of(summaries)
    return replace(
        ExtractionSummary(),
        messages=total("messages"),
        accounts=tuple(accounts),
        work_by_domain=work,
        recompute_domains=tuple(sorted({domain for summary in summaries for domain in summary.recompute_domains})),
        role_entries=roles,
        roles_written=total("roles_written"),
        # a window-wide count, made by the first slice only
        undated_source_documents=total("undated_source_documents"),
        counts=counts,
        unchanged_messages=total("unchanged_messages"),
        late_messages=total("late_messages"),
        late_accounts=tuple(sorted({account for summary in summaries for account in summary.late_accounts})),
        late_days=tuple(late_days[:MAX_REPORTED_LATE_DAYS]),
        late_days_count=len(late_days),
        processed_messages=total("processed_messages"),
        processed_accounts_count=len(processed_accounts),
        future_dated_messages=total("future_dated_messages"),
        future_dated_max_date=max((summary.future_dated_max_date for summary in future
                                   if summary.future_dated_max_date), default=None),
        ledger_written=total("ledger_written"),
        counted_elsewhere=total("counted_elsewhere"),
        unchanged_accounts=tuple(sorted(processed_accounts - set(accounts))),
        rewritten_accounts=tuple(sorted({account for summary in summaries for account in summary.rewritten_accounts})),
    )


def sum_of(summaries: Sequence[ExtractionSummary]):
    def total(name: str) -> int:
        return sum(int(getattr(summary, name)) for summary in summaries)
    return total
