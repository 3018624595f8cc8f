"""The change feed's example consumer: a per-account digest of the relationships that went cold.

`dags/mailforce_cold_digest.py` runs `cold_digest_task` whenever `announce_changes` records an event on
the feed's asset (`search-relationship-changes`). It reads the crossings into `cold` of relationships
that existed before (a relationship created cold is not news) on the scoring dates of the triggering
events, writes one digest per account to the task log, and, when the setting `digest_webhook_conn_id`
names an HTTP connection, posts each digest there as JSON `{"account", "scoring_dates", "text",
"relationships"}` (Slack's incoming webhooks read `text`; a CRM reads the rest).

A retried task posts its digests again (a webhook receiver keys them by account and scoring dates).
The connection: `host` the webhook's base URL (`https://hooks.slack.com`), `password` its secret path
(`services/T000/B000/XXXX`), both kept by Airflow; neither is ever logged. A team copies this module
and the DAG file to send the digest anywhere else.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import date
from typing import Any, Iterable, Mapping, Sequence

from mailforce.core.strength import calendar_date
from mailforce.core.wording import plural
from mailforce.es.changes import went_cold
from mailforce.es.reads import search
from mailforce.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 30
LISTED_PER_ACCOUNT = 50  # relationships named in one account's text (the JSON lists them all)


def scoring_dates_of(triggering_events: Mapping[Any, Iterable[Any]] | None) -> list[date]:
    """The scoring dates in the extras of the events that triggered the run (sorted, distinct)."""
    dates = set()
    for events in (triggering_events or {}).values():
        for event in events:
            extra = getattr(event, "extra", None) or {}
            if extra.get("scoring_date"):
                dates.add(calendar_date(str(extra["scoring_date"])))
    return sorted(dates)


def latest_scoring_date(es, settings: Settings) -> date | None:
    """The latest scoring date the feed holds (a run triggered by hand has no event to read)."""
    if not es.indices.exists(index=settings.changes_index):
        return None
    response = search(es, "the feed's latest scoring date", index=settings.changes_index, size=1,
                      source=["scoring_date"], sort=[{"scoring_date": {"order": "desc"}}])
    hits = response["hits"]["hits"]
    return calendar_date(hits[0]["_source"]["scoring_date"]) if hits else None


def by_account(crossings: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for crossing in crossings:
        grouped[crossing["account"]].append(crossing)
    return dict(sorted(grouped.items()))


def digest_text(account: str, crossings: Sequence[Mapping[str, Any]]) -> str:
    """`kunai-jim: 2 relationships went cold` and one line per relationship (strongest before first)."""
    ranked = sorted(crossings, key=lambda crossing: (-(crossing.get("strength_before") or 0),
                                                     crossing["email_address"]))
    lines = [f"{account}: {plural(len(crossings), 'relationship')} went cold"]
    for crossing in ranked[:LISTED_PER_ACCOUNT]:
        lines.append(f"- {crossing['email_address']}: {crossing['from_band']} -> cold on "
                     f"{crossing['scoring_date'][:10]} (strength {crossing.get('strength_before')} -> "
                     f"{crossing['strength']}; {plural(crossing.get('total_count') or 0, 'message')}, "
                     f"the last on {str(crossing.get('latest_engagement_date'))[:10]})")
    if len(ranked) > LISTED_PER_ACCOUNT:
        lines.append(f"- and {len(ranked) - LISTED_PER_ACCOUNT} more")
    return "\n".join(lines)


def webhook_url(connection: Any) -> str:
    """The URL to post to, from an HTTP connection (host, optional schema and port, password as the path)."""
    host = (connection.host or "").rstrip("/")
    if not host:
        raise ValueError(f"the connection {connection.conn_id!r} has no host")
    if "://" not in host:
        host = f"{connection.schema or 'https'}://{host}"
        if connection.port:
            host = f"{host}:{connection.port}"
    secret = (connection.password or "").strip("/")
    return f"{host}/{secret}" if secret else host


def post_json(url: str, payload: Mapping[str, Any]) -> int:
    """POST `payload` as JSON; returns the HTTP status (an error status raises, without the URL)."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:  # its message would carry the URL, which holds the secret
        raise RuntimeError(f"the webhook answered HTTP {error.code}") from None
    except urllib.error.URLError as error:
        raise RuntimeError(f"the webhook could not be reached ({type(error.reason).__name__})") from None


def cold_digest(es, settings: Settings, scoring_dates: Sequence[date], *, connection: Any = None) -> dict[str, int]:
    """Per account, the relationships that went cold on these scoring dates: logged, and posted to the
    webhook `connection` when one is given. Returns the count per account."""
    crossings = by_account(went_cold(es, settings, scoring_dates))
    days = ", ".join(day.isoformat() for day in scoring_dates)
    if not crossings:
        log.info("No relationship went cold on %s: no digest", days or "any scoring date")
        return {}
    url = webhook_url(connection) if connection is not None else None
    for account, account_crossings in crossings.items():
        text = digest_text(account, account_crossings)
        log.info("Digest of %s:\n%s", account, text)
        if url is not None:
            post_json(url, {"account": account, "scoring_dates": [day.isoformat() for day in scoring_dates],
                            "text": text, "relationships": [dict(crossing) for crossing in account_crossings]})
    if url is not None:
        log.info("Posted the digests of %s to the connection %r", plural(len(crossings), "account"),
                 connection.conn_id)
    return {account: len(account_crossings) for account, account_crossings in crossings.items()}
