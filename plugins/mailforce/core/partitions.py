"""Domains -> a bounded number of partitions balanced by work (pure).

Work is the number of role entries the window holds for a domain. A domain heavier than a fair
share (the company's own domain when no internal domain is set, or gmail.com) is split into shards
over disjoint sets of messages (by a hash of the message id, `message_bucket`), so no partition is
left doing nearly everything. Then longest-processing-time-first: the heaviest item goes to the
lightest partition.
"""

from __future__ import annotations

import heapq
import math
import zlib
from dataclasses import dataclass, replace
from typing import Any, Collection, Mapping

MESSAGE_BUCKETS = 1024


def message_bucket(message_id: str) -> int:
    """A stable bucket of a message id: all copies of a mail share it (crc32 is stable everywhere)."""
    return zlib.crc32(message_id.encode("utf-8")) % MESSAGE_BUCKETS


@dataclass(frozen=True)
class DomainShard:
    """The messages of one domain whose bucket is in [bucket_from, bucket_to)."""

    domain: str
    shard: int  # 1-based
    of: int
    bucket_from: int
    bucket_to: int

    @property
    def label(self) -> str:
        return f"{self.domain} shard {self.shard}/{self.of}"

    @property
    def bucket_range(self) -> tuple[int, int]:
        return self.bucket_from, self.bucket_to

    def to_xcom(self) -> dict[str, Any]:
        return {"domain": self.domain, "shard": self.shard, "of": self.of,
                "bucket_from": self.bucket_from, "bucket_to": self.bucket_to}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> "DomainShard":
        return cls(domain=data["domain"], shard=data["shard"], of=data["of"],
                   bucket_from=data["bucket_from"], bucket_to=data["bucket_to"])


@dataclass(frozen=True)
class Partition:
    number: int  # 1-based, for people
    of: int
    domains: tuple[str, ...]  # whole domains, heaviest first
    shards: tuple[DomainShard, ...]  # shards of heavy domains
    work: int
    share: float  # of the run's work
    # Whole domains of this partition recomputed over all time (a message of theirs was counted
    # before); the others add the window's messages to the stored documents.
    recompute_domains: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """What a mapped task instance covers, for the Airflow UI."""
        names = [shard.label for shard in self.shards] + list(self.domains)
        heaviest = names[0] if names else "-"
        more = f" +{len(names) - 1} more" if len(names) > 1 else ""
        return f"{self.number}/{self.of} {heaviest}{more} ({self.share:.0%} of work)"

    @property
    def split_domains(self) -> tuple[str, ...]:
        """The heavy domains this partition compiles shards of, sorted."""
        return tuple(sorted({shard.domain for shard in self.shards}))

    def with_recompute(self, recompute: Collection[str]) -> "Partition":
        """This partition, its whole domains in `recompute` marked to be recomputed over all time."""
        return replace(self, recompute_domains=tuple(domain for domain in self.domains if domain in recompute))

    def to_xcom(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "of": self.of,
            "domains": list(self.domains),
            "shards": [shard.to_xcom() for shard in self.shards],
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
            shards=tuple(DomainShard.from_xcom(shard) for shard in data.get("shards", ())),
            work=data["work"],
            share=data["share"],
            recompute_domains=tuple(data.get("recompute_domains", ())),
        )


def _work_items(
    work_by_domain: Mapping[str, int], partitions: int, min_split_work: int
) -> list[tuple[float, str, DomainShard | None]]:
    """(work, domain, shard or None) items; domains above a fair share are split into shards.

    Small domains are never split: merging shards costs more than it saves below `min_split_work`.
    """
    fair_share = sum(work_by_domain.values()) / partitions
    items: list[tuple[float, str, DomainShard | None]] = []
    for domain, work in work_by_domain.items():
        shard_count = min(math.ceil(work / fair_share), partitions) if partitions > 1 and fair_share else 1
        if shard_count <= 1 or work < min_split_work:
            items.append((work, domain, None))
            continue
        for number in range(shard_count):
            shard = DomainShard(
                domain=domain,
                shard=number + 1,
                of=shard_count,
                bucket_from=number * MESSAGE_BUCKETS // shard_count,
                bucket_to=(number + 1) * MESSAGE_BUCKETS // shard_count,
            )
            items.append((work / shard_count, domain, shard))
    return items


def plan_partitions(
    work_by_domain: Mapping[str, int],
    max_partitions: int,
    min_split_work: int = 1,
    min_partition_work: int = 1,
) -> list[Partition]:
    """At most `max_partitions` partitions covering every domain once (whole or in shards).

    A small window gets fewer partitions (about `min_partition_work` role entries each at least):
    every mapped task costs a scheduling round and reads again the messages it shares with others.
    """
    if max_partitions < 1:
        raise ValueError("max_partitions must be at least 1")
    if not work_by_domain:
        return []
    wanted = max(1, min(max_partitions, sum(work_by_domain.values()) // max(min_partition_work, 1)))
    items = _work_items(work_by_domain, wanted, min_split_work)
    items.sort(key=lambda item: (-item[0], item[1], item[2].shard if item[2] else 0))
    count = min(wanted, len(items))
    loads = [(0.0, number) for number in range(count)]  # (work, partition number)
    members: list[list[tuple[float, str, DomainShard | None]]] = [[] for _ in range(count)]
    for item in items:
        load, number = heapq.heappop(loads)
        members[number].append(item)
        heapq.heappush(loads, (load + max(item[0], 1), number))
    grand_total = max(sum(work_by_domain.values()), 1)
    partitions = []
    for number, chosen in enumerate(members):
        work = sum(item[0] for item in chosen)
        partitions.append(Partition(
            number=number + 1,
            of=count,
            domains=tuple(domain for _, domain, shard in chosen if shard is None),
            shards=tuple(shard for _, _, shard in chosen if shard is not None),
            work=round(work),
            share=work / grand_total,
        ))
    return partitions
