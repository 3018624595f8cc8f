"""The ledger index: one flat record per (account, message) a run counted, for reconciliation.

Written by the extraction with the roles documents (`mailforce.core.extraction.ledger_document`);
read by reconciliation (`mailforce.stages.reconcile`) as counts per account and UTC day, and ids
only where those counts differ from the source's.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from mailforce.es.indices import create_index
from mailforce.es.reads import scan
from mailforce.settings import Settings

KEYWORD = {"type": "keyword"}
DATE = {"type": "date", "format": "strict_date_optional_time"}
LEDGER_PROPERTIES = {
    "account": KEYWORD,
    "message_id": KEYWORD,
    "date": DATE,  # the message's date in this account (its earliest copy's)
    "day": KEYWORD,  # that date's UTC day, YYYY-MM-DD
    "run_id": KEYWORD,  # the run that last counted it
    "updated_at": DATE,
}


def ensure_ledger_index(es, settings: Settings) -> bool:
    """Create the ledger index with its explicit, strict mapping when missing; True when created."""
    if es.indices.exists(index=settings.ledger_index):
        return False
    return create_index(es, settings, settings.ledger_index, LEDGER_PROPERTIES)


def scan_keys(es, index: str, query: dict[str, Any], fields: Sequence[str], page_size: int,
              keep_alive: str) -> Iterator[dict[str, Any]]:
    """Every hit of the query with only these fields (order does not matter)."""
    return scan(es, index, {"query": query, "_source": list(fields)}, page_size, keep_alive, f"keys of {index}")
