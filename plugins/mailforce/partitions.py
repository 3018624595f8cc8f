"""Domains -> a bounded number of partitions balanced by work (pure).

Longest-processing-time-first: the heaviest domain goes to the lightest partition. With N partitions
no partition exceeds the ideal share by more than the heaviest single domain.
"""

from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Partition:
    number: int  # 1-based, for people
    of: int
    domains: tuple[str, ...]
    work: int  # role entries in the window naming these domains
    share: float  # of the run's work

    @property
    def label(self) -> str:
        """What a mapped task instance covers, for the Airflow UI."""
        heaviest = self.domains[0] if self.domains else "-"
        more = f" +{len(self.domains) - 1} domains" if len(self.domains) > 1 else ""
        return f"{self.number}/{self.of} {heaviest}{more} ({self.share:.0%} of work)"

    def to_dict(self) -> dict[str, Any]:
        summary = asdict(self)
        summary["domains"] = list(self.domains)
        summary["label"] = self.label
        return summary


def plan_partitions(work_by_domain: Mapping[str, int], max_partitions: int) -> list[Partition]:
    """At most `max_partitions` partitions; each lists its domains heaviest first."""
    if max_partitions < 1:
        raise ValueError("max_partitions must be at least 1")
    ordered = sorted(work_by_domain.items(), key=lambda item: (-item[1], item[0]))
    count = min(max_partitions, len(ordered))
    if count == 0:
        return []
    loads = [(0, number) for number in range(count)]  # (work, partition number)
    members: list[list[str]] = [[] for _ in range(count)]
    for domain, work in ordered:
        load, number = heapq.heappop(loads)
        members[number].append(domain)
        heapq.heappush(loads, (load + max(work, 1), number))
    totals = [sum(work_by_domain[domain] for domain in domains) for domains in members]
    grand_total = max(sum(totals), 1)
    partitions = [
        Partition(number=number + 1, of=count, domains=tuple(domains), work=total, share=total / grand_total)
        for number, (domains, total) in enumerate(zip(members, totals))
    ]
    return partitions
