"""How logs, the run summary and the demo say things (pure): one window notation, plurals.

Window notation, everywhere: ``(start, end]`` when the start is exclusive (the watermark),
``[from_date, end]`` when it is inclusive (a ``from_date``), ``(the beginning, end]`` when there is
no start (a fresh cluster, or a backfill from the accounts' very first message).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

from mailforce.core.dates import format_utc
from mailforce.core.window import Window


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 domain`, `2 domains`, `1,204 source documents`; `many` for irregular plurals."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def window_notation(start: datetime | str | None, end: datetime | str, inclusive: bool = False) -> str:
    """`(start, end]`, `[from_date, end]` or `(the beginning, end]`."""
    def text(moment: datetime | str) -> str:
        return format_utc(moment) if isinstance(moment, datetime) else str(moment)

    if start is None:
        return f"(the beginning, {text(end)}]"
    return f"{'[' if inclusive else '('}{text(start)}, {text(end)}]"


def describe_window(window: Window) -> str:
    return window_notation(window.window_start, window.window_end, window.start_inclusive)


def duration_text(seconds: float) -> str:
    """`42 s`, `3 min 5 s`, `1 h 2 min`."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


UNKNOWN_ACCOUNTS_HINT = ("not in the source index: mistyped, or a mailbox not loaded yet "
                         "(the run goes on; nothing is read for them)")


def unknown_accounts_text(unknown: Mapping[str, Sequence[str]]) -> str:
    """`backfilled_accounts kunai-jimm; exclude_accounts kunai-bot` (empty when none)."""
    return "; ".join(f"{param} {', '.join(names)}" for param, names in unknown.items() if names)


def run_summary(stats: Mapping[str, Any], duration_seconds: float,
                unknown_accounts: Mapping[str, Sequence[str]] | None = None) -> str:
    """One line a person reads: what the run covered and did, from its runtime-stats record."""
    written = stats.get("documents_written") or {}
    total_written = sum(int(value or 0) for value in written.values())
    window = window_notation(stats.get("window_start"), stats["window_end"], bool(stats.get("window_start_inclusive")))
    kind = ""
    if stats.get("backfill"):
        kind = f" (backfill of {', '.join(stats.get('backfilled_accounts') or [])}; the watermark stays)"
    elif stats.get("interval_backfill"):
        kind = " (Airflow backfill of a past interval; the watermark stays)"
    excluded = stats.get("exclude_accounts") or []
    processed = int(stats.get("emails_processed") or 0)
    # Records before `counted_messages` existed counted only new or changed messages as processed.
    unchanged = processed - int(stats.get("counted_messages", processed) or 0)
    parts = [
        f"Window {window}{kind}",
        f"{plural(int(stats.get('emails_processed') or 0), 'message')} of "
        f"{plural(int(stats.get('email_accounts_processed') or 0), 'account')}"
        + (f" ({unchanged:,} of them counted before and unchanged)" if unchanged else "")
        + (f" (excluded: {', '.join(excluded)})" if excluded else ""),
        f"{plural(int(stats.get('domains_processed') or 0), 'domain')} in "
        f"{plural(int(stats.get('partitions') or 0), 'partition')}",
        f"{plural(int(stats.get('late_messages') or 0), 'late message')}",
        f"{plural(total_written, 'document')} written" if total_written else "no document written (all unchanged)",
        f"{duration_text(duration_seconds)} including retries",
    ]
    line = "; ".join(parts)
    unknown = unknown_accounts_text(unknown_accounts or {})
    if unknown:
        line += f". WARNING unknown accounts ({unknown}): {UNKNOWN_ACCOUNTS_HINT}"
    return line
