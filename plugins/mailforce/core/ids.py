"""Deterministic output document ids (pure): rewriting the same facts overwrites."""

from __future__ import annotations

import hashlib

# Hex characters of a sha256 kept: 160 bits, far from any collision at mailbox scale.
DOCUMENT_ID_LENGTH = 40
_KEY_SEPARATOR = "\x1f"  # the ASCII unit separator: never part of an account, domain or run id


def document_id(*natural_key: str) -> str:
    """A deterministic id from a natural key only: rewriting the same facts overwrites."""
    joined = _KEY_SEPARATOR.join(natural_key)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:DOCUMENT_ID_LENGTH]
