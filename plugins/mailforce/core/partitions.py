"""Domains -> a bounded number of partitions balanced by work (pure).

Work is the number of role entries the window holds for a domain. The domain is the unit of work:
every output document lives inside one domain, so a partition computes its domains completely and
nothing needs merging afterwards. Longest-processing-time-first: the heaviest domain goes to the
lightest partition. The trade-off: one very heavy domain (the company's own when no internal domain
is set, or gmail.com) makes its partition the longest; its memory is bounded by the domain's
addresses, not its messages.
"""

from __future__ import annotations

import heapq
import zlib
from dataclasses import dataclass, replace
from typing import Any, Collection, Mapping

MESSAGE_BUCKETS = 1024


def message_bucket(message_id: str) -> int:
    """A stable bucket of a message id: all copies of a mail share it (crc32 is stable everywhere)."""
    return zlib.crc32(message_id.encode("utf-8")) % MESSAGE_BUCKETS


@dataclass(frozen=True)
class Partition:
    number: int  # 1-based, for people
    of: int
    domains: tuple[str, ...]  # heaviest first
    work: int
    share: float  # of the run's work
    # Domains of this partition recomputed over all time (a message of theirs was counted before);
    # the others add the window's messages to the stored documents.
    recompute_domains: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """What a mapped task instance covers, for the Airflow UI."""
        heaviest = self.domains[0] if self.domains else "-"
        more = f" +{len(self.domains) - 1} more" if len(self.domains) > 1 else ""
        return f"{self.number}/{self.of} {heaviest}{more} ({self.share:.0%} of work)"

    def with_recompute(self, recompute: Collection[str]) -> "Partition":
        """This partition, its domains in `recompute` marked to be recomputed over all time."""
        return replace(self, recompute_domains=tuple(domain for domain in self.domains if domain in recompute))

    def to_xcom(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "of": self.of,
            "domains": list(self.domains),
            "work": self.work,
            "share": self.share,
            "label": self.label,  # read by the mapped task's map_index_template
            "recompute_domains": list(self.recompute_domains),
        }

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "Partition":
        return cls(
            number=data["number"],
            of=data["of"],
            domains=tuple(data["domains"]),
            work=data["work"],
            share=data["share"],
            recompute_domains=tuple(data.get("recompute_domains", ())),
        )


def plan_partitions(
    work_by_domain: Mapping[str, int],
    max_partitions: int,
    min_partition_work: int = 1,
) -> list[Partition]:
    """At most `max_partitions` partitions covering every domain once.

    A small window gets fewer partitions (about `min_partition_work` role entries each at least):
    every mapped task costs a scheduling round and reads again the messages it shares with others.
    """
    if max_partitions < 1:
        raise ValueError("max_partitions must be at least 1")
    if not work_by_domain:
        return []
    wanted = max(1, min(max_partitions, sum(work_by_domain.values()) // max(min_partition_work, 1)))
    items = sorted(work_by_domain.items(), key=lambda item: (-item[1], item[0]))
    count = min(wanted, len(items))
    loads = [(0, number) for number in range(count)]  # (work, partition number)
    members: list[list[tuple[str, int]]] = [[] for _ in range(count)]
    for domain, work in items:
        load, number = heapq.heappop(loads)
        members[number].append((domain, work))
        heapq.heappush(loads, (load + max(work, 1), number))
    grand_total = max(sum(work_by_domain.values()), 1)
    partitions = []
    for number, chosen in enumerate(members):
        work = sum(work for _, work in chosen)
        partitions.append(Partition(
            number=number + 1,
            of=count,
            domains=tuple(domain for domain, _ in chosen),
            work=work,
            share=work / grand_total,
        ))
    return partitions
