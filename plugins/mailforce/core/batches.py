"""Iterables in fixed-size batches (pure)."""

from __future__ import annotations

from itertools import islice
from typing import Any, Iterable, Iterator, Mapping


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to `size` items, in order."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def batched_by_work(items: Iterable[str], work: Mapping[str, int], budget: int, size: int) -> Iterator[list[str]]:
    """Lists of items, in order, each holding up to `size` items and at most `budget` work, except
    that an item heavier than `budget` makes a list of its own. An item `work` does not know weighs 1."""
    batch: list[str] = []
    load = 0
    for item in items:
        weight = max(work.get(item, 1), 1)
        if batch and (load + weight > budget or len(batch) >= size):
            yield batch
            batch, load = [], 0
        batch.append(item)
        load += weight
    if batch:
        yield batch


def without(document: dict[str, Any], *names: str) -> dict[str, Any]:
    """The document minus the named fields (what change detection compares)."""
    return {key: value for key, value in document.items() if key not in names}
