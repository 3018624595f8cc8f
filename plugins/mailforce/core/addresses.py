"""Normalise and validate one email address (pure; docs/SEMANTICS.md, "Addresses")."""

from __future__ import annotations

from functools import lru_cache

# Distinct header entries remembered with their normalised address: a mailbox names the same
# correspondents again and again, and the cache stays this size however much mail is read.
NORMALISED_CACHE_SIZE = 16_384  # about 4 MB at most


def normalise_address(entry: object) -> str | None:
    """The normalised address of one header entry, or None when it is not a valid address.

    Display names and angle brackets go (`"Jim" <Jim@Acme.COM>` -> `jim@acme.com`); the result is
    trimmed and lower-cased, then must be `local@domain` with a domain of two or more labels.
    """
    if not isinstance(entry, str):
        return None
    return _normalised(entry)


@lru_cache(maxsize=NORMALISED_CACHE_SIZE)
def _normalised(entry: str) -> str | None:
    address = within_angle_brackets(entry).strip().lower()
    return address if is_valid_address(address) else None


def within_angle_brackets(text: str) -> str:
    """The text between the last `<` and the first `>` after it, or the whole text without them."""
    opening = text.rfind("<")
    if opening != -1:
        closing = text.find(">", opening)
        if closing != -1:
            return text[opening + 1 : closing]
    return text


def display_name(entry: object) -> str | None:
    """The display name of one header entry (`"Jim Smith" <jim@acme.com>` -> `jim smith`: quotes and
    surrounding spaces gone, spaces collapsed, lower case), or None when it carries none."""
    if not isinstance(entry, str) or "<" not in entry:
        return None
    name = " ".join(entry[:entry.rfind("<")].replace('"', " ").replace("'", " ").split()).lower()
    return name or None


def is_valid_address(address: str) -> bool:
    if not address or any(character.isspace() for character in address):
        return False
    local, at, domain = address.partition("@")
    return bool(at and local) and is_valid_domain(domain)


def is_valid_domain(domain: str) -> bool:
    """An address's domain: two or more non-empty dot-separated labels, no whitespace, no `@`."""
    if not domain or "@" in domain or any(character.isspace() for character in domain):
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(labels)


def domain_of(address: str) -> str:
    """The part after `@` of a normalised address."""
    return address.rpartition("@")[2]


def address_entries(value: object) -> list[object]:
    """The entries of one address field: a string is one entry, a list is many, absent is none."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]
