"""A history loaded in chunks: the range after the watermark cut at calendar boundaries (pure).

Each chunk is one ordinary run of `mailforce_engagements` with `to_date` = the chunk's end: its window
starts at the watermark, whatever ran before it, so the watermark only ever moves over a contiguous
prefix of done chunks. A failed chunk leaves the watermark at the last done one; the next chunk (or
the failed one retried) starts there, and a new plan (the history DAG run again) starts at the
watermark too: the load resumes, it never claims more than is done (docs/RUNS.md, "Loading a history").
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

CHUNKS = ("week", "month", "quarter", "year")
MAX_CHUNKS = 1000  # a plan longer than this is refused (pick a longer chunk)


class HistoryError(ValueError):
    """A history request that cannot be planned; the message says why in one sentence."""


def chunk_end(moment: datetime, chunk: str) -> datetime:
    """The end of the chunk holding `moment`: the first boundary strictly after it (UTC midnight of a Monday, a month's, a quarter's
    or a year's first day)."""
    day = moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if chunk == "week":
        return day + timedelta(days=7 - day.weekday())
    if chunk == "year":
        return day.replace(year=day.year + 1, month=1, day=1)
    step = 3 if chunk == "quarter" else 1
    month = ((day.month - 1) // step) * step + step  # 0-based month of the next boundary
    return day.replace(year=day.year + month // 12, month=month % 12 + 1, day=1)


def chunk_ends(period_starts: list[datetime], until: datetime, chunk: str) -> list[datetime]:
    """The chunks' ends for the periods that hold mail (their starts, any order): each period's end,
    and `until` last (empty periods make no chunk)."""
    if chunk not in CHUNKS:
        raise HistoryError(f"chunk must be one of {', '.join(CHUNKS)}, got {chunk!r}")
    ends = sorted({end for end in (chunk_end(start, chunk) for start in period_starts) if end < until})
    if len(ends) > MAX_CHUNKS:
        raise HistoryError(f"{len(ends)} chunks of one {chunk}: more than {MAX_CHUNKS}, pick a longer chunk")
    return [*ends, until]


def history_chunks(start: datetime | None, until: datetime, chunk: str = "month",
                   first_message: datetime | None = None) -> list[datetime]:
    """The ends of the chunks after `start` (the watermark; None: a fresh cluster, from the first
    message's date) up to `until`, inclusive ends, the last one `until` itself. Empty when the
    watermark is already at or past `until`."""
    if chunk not in CHUNKS:
        raise HistoryError(f"chunk must be one of {', '.join(CHUNKS)}, got {chunk!r}")
    begin = start if start is not None else first_message
    if start is not None and start >= until:
        return []
    if begin is None:  # nothing dated in the source: one chunk does it
        return [until]
    ends: list[datetime] = []
    boundary = chunk_end(begin, chunk)
    while boundary < until:
        ends.append(boundary)
        boundary = chunk_end(boundary, chunk)
        if len(ends) > MAX_CHUNKS:
            raise HistoryError(f"more than {MAX_CHUNKS} chunks of one {chunk}: pick a longer chunk")
    ends.append(until)
    return ends
