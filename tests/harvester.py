"""The harvester simulation the late-mail tests share (tests/test_late_mail.py, tests/test_change_feed.py;
the `harvest` fixture in tests/conftest.py): a few hundred Enron messages indexed after a seeded random
lag (seconds to two days), out of order, some copied to a second mailbox a day or two later, a few
dated ahead of their arrival."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from mailforce.core.dates import format_utc

UTC = timezone.utc
T0 = datetime(2024, 3, 1, tzinfo=UTC)
RUNS = 16  # hourly
MESSAGES = 250
COPIES = 25
FUTURE = 6


def _lag(rng: random.Random) -> timedelta:
    """Seconds to two days, most of them short (log-uniform)."""
    return timedelta(seconds=int(10 ** rng.uniform(0, 5.24)))  # 1 s .. ~2 days


def harvested(es, settings, enron: list[dict]) -> list[tuple[str, dict, datetime]]:
    """(documents with their arrival time) of a seeded simulation on a few hundred Enron messages."""
    rng = random.Random(9)
    originals = sorted(enron, key=lambda doc: doc["_id"])
    es.indices.delete(index=settings.source_index)
    chosen = rng.sample([doc for doc in originals if doc["_source"].get("messageId")], MESSAGES)
    span = timedelta(hours=RUNS + 24)
    documents = []
    for doc in chosen:
        date = T0 - timedelta(hours=24) + timedelta(seconds=rng.randrange(int(span.total_seconds())))
        documents.append((doc["_id"], dict(doc["_source"], date=format_utc(date)), date + _lag(rng)))
    accounts = sorted({source["account"] for _, source, _ in documents})
    for number, (identifier, source, arrival) in enumerate(documents[:COPIES]):
        other = next(account for account in accounts if account != source["account"])
        date = datetime.fromisoformat(source["date"].replace("Z", "+00:00"))
        if number % 3 == 0:
            date -= timedelta(minutes=1)  # the second mailbox's copy is stamped earlier
        copy_arrival = arrival + timedelta(hours=rng.randint(20, 44))
        copy_arrival = min(copy_arrival, date + timedelta(hours=47))
        documents.append((f"{identifier}-copy", dict(source, account=other, date=format_utc(date)), copy_arrival))
    for identifier, source, arrival in documents[COPIES:COPIES + FUTURE]:
        # a sender's clock ahead: dated hours after it arrived (some after the last run)
        source["date"] = format_utc(arrival + timedelta(hours=rng.randint(2, 30)))
    rng.shuffle(documents)
    return documents
