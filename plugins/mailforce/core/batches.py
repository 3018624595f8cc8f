"""Iterables in fixed-size batches (pure)."""

from __future__ import annotations

from itertools import islice
from typing import Any, Iterable, Iterator, Mapping, Sequence


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to `size` items, in order."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def batched_by_work(items: Iterable[str], work: Mapping[str, int], budget: int, size: int) -> Iterator[list[str]]:
    """Lists of items, in order, each holding up to `size` items and at most `budget` work, except
    that an item heavier than `budget` makes a list of its own. An item `work` does not know weighs 1."""
    return batched_groups_by_work(([item] for item in items), work, budget, size)


def batched_groups_by_work(groups: Iterable[Sequence[str]], work: Mapping[str, int], budget: int,
                           size: int) -> Iterator[list[str]]:
    """The items of whole groups, in order, in lists of up to about `size` items and `budget` work
    (a group's work is its items' summed); a group is never split, so a heavier or larger group
    makes a list of its own. An item `work` does not know weighs 1."""
    batch: list[str] = []
    load = 0
    for group in groups:
        weight = sum(max(work.get(item, 1), 1) for item in group)
        if batch and (load + weight > budget or len(batch) + len(group) > size):
            yield batch
            batch, load = [], 0
        batch.extend(group)
        load += weight
    if batch:
        yield batch


def without(document: dict[str, Any], *names: str) -> dict[str, Any]:
    """The document minus the named fields (what change detection compares)."""
    return {key: value for key, value in document.items() if key not in names}
