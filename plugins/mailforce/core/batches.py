"""Iterables in fixed-size batches (pure)."""

from __future__ import annotations

from itertools import islice
from typing import Any, Iterable, Iterator


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to `size` items, in order."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def without(document: dict[str, Any], *names: str) -> dict[str, Any]:
    """The document minus the named fields (what change detection compares)."""
    return {key: value for key, value in document.items() if key not in names}
