"""Automated and role addresses: patterns on the local part, and the headers of bulk mail (pure).

Flagged addresses are still counted (figures stay exact); they only rank last in strength. The third
reason, behaviour (an address that broadcasts and is never answered), needs every mailbox's mail:
`mailforce.core.conversations`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from mailforce.core.addresses import within_angle_brackets

DEFAULT_AUTOMATED_PATTERNS: tuple[str, ...] = (
    r"no-?reply",
    r"do-?not-?reply",
    r"mailer-daemon",
    r"^postmaster$",
    r"^notifications?$",
    r"^bounces?([-+.]|$)",
    r"-bounces?$",
    r"newsletters?",
    r"^listserv$",
    r"^majordomo$",
    r"-request$",
    r"^owner-",
    r"-owner$",
)
BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
# Source fields the loader fills from the headers of the same names.
HEADER_FIELDS = ("auto_submitted", "precedence", "list_unsubscribe", "list_id")


class AddressClassifier:
    """Decides whether a local part looks automated; compiled once per run."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_AUTOMATED_PATTERNS) -> None:
        self.patterns = tuple(patterns)
        self._compiled = [re.compile(pattern) for pattern in self.patterns]

    def is_automated(self, address: str) -> bool:
        local = address.rpartition("@")[0]
        return any(pattern.search(local) for pattern in self._compiled)


def _header_text(source: Mapping[str, Any], name: str) -> str:
    value = source.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return value.strip().lower() if isinstance(value, str) else ""


def list_id_form(address: str) -> str:
    """`kevin.presto@enron.com` -> `kevin.presto.enron.com`: the address as a List-Id names it (its
    local part, a dot, its domain). Matching this way, not by guessing which dot of a list id was the
    `@`, finds a list whose local part has dots too."""
    local, _, domain = address.rpartition("@")
    return f"{local}.{domain}"


def header_flagged_addresses(source: Mapping[str, Any], roles: Iterable[tuple[str, str]]) -> set[str]:
    """The addresses of one source copy that its headers mark as automated.

    Bulk headers (Auto-Submitted other than "no", Precedence bulk/junk/list, List-Unsubscribe) mark
    the sender; a List-Id marks the list's own address among the recipients.
    """
    auto_submitted = _header_text(source, "auto_submitted")
    bulk = (
        (auto_submitted and auto_submitted != "no")
        or _header_text(source, "precedence") in BULK_PRECEDENCE
        or bool(_header_text(source, "list_unsubscribe"))
    )
    raw = source.get("list_id")
    list_ids = {within_angle_brackets(value).strip().lower()
                for value in (raw if isinstance(raw, list) else [raw]) if isinstance(value, str)} - {""}
    flagged = set()
    for address, role in roles:
        if bulk and role == "From":
            flagged.add(address)
        elif list_ids and role in ("To", "CC") and list_id_form(address) in list_ids:
            flagged.add(address)
    return flagged
