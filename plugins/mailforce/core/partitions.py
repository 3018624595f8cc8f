"""Domains -> a bounded number of partitions balanced by work (pure).

Work is the number of role entries the window holds for a domain. The domain is the unit of work:
every output document lives inside one domain, so a partition computes its domains completely and
nothing needs merging afterwards. Longest-processing-time-first: the heaviest domain goes to the
lightest partition. The trade-off: one very heavy domain (the company's own when no internal domain
is set, or gmail.com) makes its partition the longest; its memory is bounded by the domain's
addresses, not its messages.

The run's time is its longest partition (the makespan), and every mapped task costs a scheduling
round of its own and reads again the messages it shares with others. So the plan uses the fewest
partitions whose makespan is within `MAKESPAN_SLACK` of the makespan the most allowed partitions
reach: with one heavy domain, partitions that could not finish before it are not started.
"""

from __future__ import annotations

import heapq
import zlib
from dataclasses import dataclass, replace
from typing import Any, Collection, Mapping

MESSAGE_BUCKETS = 1024
# A plan with fewer partitions is taken when its longest partition is at most this much longer than
# the longest one with the most partitions allowed (one partition fewer saves a task's fixed cost).
MAKESPAN_SLACK = 0.05


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
    # The work of each domain, in the order of `domains` (empty in a plan written before it existed):
    # the compile reads its domains in chunks of bounded work, so its memory does not grow with them.
    domain_work: tuple[int, ...] = ()

    @property
    def work_by_domain(self) -> dict[str, int]:
        return dict(zip(self.domains, self.domain_work))

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
            "domain_work": list(self.domain_work),
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
            domain_work=tuple(data.get("domain_work", ())),
        )


def _pack(items: list[tuple[str, int]], count: int) -> tuple[list[list[tuple[str, int]]], int]:
    """Longest-processing-time-first into `count` bins: the members of each and the largest load.

    `items` come heaviest first; a domain with no work still costs a little (load 1).
    """
    loads = [(0, number) for number in range(count)]  # (work, partition number)
    members: list[list[tuple[str, int]]] = [[] for _ in range(count)]
    for domain, work in items:
        load, number = heapq.heappop(loads)
        members[number].append((domain, work))
        heapq.heappush(loads, (load + max(work, 1), number))
    return members, max(load for load, _ in loads)


def plan_partitions(
    work_by_domain: Mapping[str, int],
    max_partitions: int,
    min_partition_work: int = 1,
) -> list[Partition]:
    """At most `max_partitions` partitions covering every domain once.

    A small window gets fewer partitions (about `min_partition_work` role entries each at least):
    every mapped task costs a scheduling round and reads again the messages it shares with others.
    Of the partition counts left, the fewest that finish about as soon as the most is taken (see
    `MAKESPAN_SLACK`): one heavy domain and a long tail give two partitions, not eight.
    """
    if max_partitions < 1:
        raise ValueError("max_partitions must be at least 1")
    if not work_by_domain:
        return []
    total = sum(work_by_domain.values())
    wanted = max(1, min(max_partitions, total // max(min_partition_work, 1)))
    items = sorted(work_by_domain.items(), key=lambda item: (-item[1], item[0]))
    most = min(wanted, len(items))
    members, best = _pack(items, most)
    bound = best * (1 + MAKESPAN_SLACK)
    loaded = sum(max(work, 1) for _, work in items)
    # No count below loaded/bound can reach the bound (its average load is already above it).
    for count in range(max(1, -(-loaded // max(int(bound), 1))), most):
        fewer, makespan = _pack(items, count)
        if makespan <= bound:
            members = fewer
            break
    count = len(members)
    grand_total = max(total, 1)
    partitions = []
    for number, chosen in enumerate(members):
        work = sum(work for _, work in chosen)
        partitions.append(Partition(
            number=number + 1,
            of=count,
            domains=tuple(domain for domain, _ in chosen),
            work=work,
            share=work / grand_total,
            domain_work=tuple(work for _, work in chosen),
        ))
    return partitions
