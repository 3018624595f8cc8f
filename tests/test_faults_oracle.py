"""DAG-level oracle tests through the test proxy with seeded random faults (docs/REAL_CLUSTERS.md).

Each scenario runs the product's own client -> EsProxy (es9 flavour) -> a real osmem, with a seeded
FaultPlan: 429 for whole bulks and single items, 503 on searches, connections dropped after a scroll
page was served, mget item errors, partial shard results, latency. Every run either succeeds, or
raises with the watermark unmoved and is run again (still under faults; a last clean run if need be);
the outputs then equal the oracle exactly (v1 kinds), with nothing lost.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from driver import run_once
from esproxy import (
    BULK_429, BULK_ITEM_429, DROP_AFTER_FORWARD, LATENCY, MGET_ITEM_ERROR, PARTIAL_SHARDS, SEARCH_503,
    EsProxy, FaultPlan, Rule,
)
from mailforce.core.run_params import RunRequest
from mailforce.es import reads, writes
from mailforce.es.client import ClientOptions, build_client
from mailforce.es.watermark import read_watermark
from mailforce.tools.synthetic import CorpusSpec, dirty_corpus, iter_corpus
from oracle import Coverage, summarise
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, utc

EVERYTHING = Coverage(window_end=FAR_FUTURE_RUN_END)
ATTEMPTS_UNDER_FAULTS = 4
TOTALS: Counter = Counter()  # across the module, for the report line


def fault_plan() -> FaultPlan:
    return FaultPlan([
        Rule(BULK_429, probability=0.08),
        Rule(BULK_ITEM_429, probability=0.3, item_probability=0.2),
        Rule(SEARCH_503, probability=0.08),
        Rule(DROP_AFTER_FORWARD, op="scroll", probability=0.05),
        Rule(MGET_ITEM_ERROR, probability=0.2),
        Rule(PARTIAL_SHARDS, op=("search", "count"), probability=0.08, drop_hits=0.5),
        Rule(LATENCY, probability=0.03, latency_ms=20),
    ])


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """The same retries with short pauses: what is tested is that they happen, not how long they wait."""
    monkeypatch.setattr(reads, "MGET_RETRY_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(writes, "INITIAL_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(writes, "MAX_BACKOFF_SECONDS", 0.05)


class FaultyRuns:
    def __init__(self, es, es_url: str, settings, seed: int) -> None:
        self.es, self.settings = es, settings
        self.proxy = EsProxy(es_url, flavour="es9", faults=fault_plan(), seed=seed).start()
        self.client = build_client(ClientOptions(url=self.proxy.url, engine="es9", max_retries=4, request_timeout=60,
                                                 retry_backoff_base=0.01, retry_backoff_cap=0.05))
        self.clean = build_client(ClientOptions(url=es_url, engine="osmem", max_retries=1))
        self.runs = self.failed = 0

    def run(self, run_id: str, run_end=FAR_FUTURE_RUN_END, **kwargs: Any) -> None:
        """The run under faults until it succeeds; each failure leaves the watermark where it was."""
        for attempt in range(ATTEMPTS_UNDER_FAULTS):
            watermark = read_watermark(self.es, self.settings)
            self.runs += 1
            try:
                run_once(self.client, self.settings, RunRequest(), run_end, f"{run_id}-{attempt}", **kwargs)
                return
            except Exception as error:  # noqa: BLE001 - any failure must be loud and leave no watermark
                self.failed += 1
                print(f"{run_id} attempt {attempt} failed: {type(error).__name__}: {str(error)[:160]}")
                assert read_watermark(self.es, self.settings) == watermark
                if kwargs:
                    return  # a simulated crash: the caller re-runs
        self.runs += 1
        run_once(self.clean, self.settings, RunRequest(), run_end, f"{run_id}-clean")  # a clean re-run

    def finish(self, source: list[dict]) -> None:
        expected = assert_matches_oracle(self.es, self.settings, source, [EVERYTHING])
        compared = sum(summarise(expected).values())
        counts = self.proxy.fault_counts
        TOTALS.update(counts)
        TOTALS.update({"runs": self.runs, "failed runs": self.failed, "documents compared": compared})
        print(f"faults {dict(counts)}; runs {self.runs} ({self.failed} failed); documents compared {compared}; "
              f"differences 0; totals so far {dict(TOTALS)}")
        assert sum(counts.values()) > 0
        self.client.close()
        self.clean.close()
        self.proxy.stop()


def test_enron_subset_under_faults_equals_the_oracle(es, es_url, settings, enron):
    source = enron
    runs = FaultyRuns(es, es_url, settings, seed=1)
    runs.run("enron")
    runs.finish(source)


@pytest.mark.extraction_slices(1, 8)
def test_dirty_corpus_under_faults_equals_the_oracle(es, es_url, settings):
    documents = dirty_corpus()
    load_source(es, settings, documents)
    runs = FaultyRuns(es, es_url, settings, seed=2)
    runs.run("dirty")
    runs.finish(documents)


def test_windows_under_faults_equal_the_oracle(es, es_url, settings):
    documents = list(iter_corpus(CorpusSpec(seed=21, messages=600, accounts=6, correspondent_domains=30, dirt=0.05)))
    load_source(es, settings, documents)
    runs = FaultyRuns(es, es_url, settings, seed=3)
    for number, cut in enumerate(("2001-03-31T00:00:00Z", "2001-09-30T00:00:00Z")):
        runs.run(f"window-{number}", run_end=utc(cut))
    runs.run("window-last")
    runs.finish(documents)


def test_crash_and_rerun_under_faults_equals_the_oracle(es, es_url, settings):
    documents = list(iter_corpus(CorpusSpec(seed=22, messages=500, accounts=5, correspondent_domains=30, dirt=0.05)))
    load_source(es, settings, documents)
    runs = FaultyRuns(es, es_url, settings, seed=4)
    runs.run("before", run_end=utc("2001-06-30T00:00:00Z"))
    runs.run("dies", stop_after_partitions=1)
    runs.run("rerun")
    runs.finish(documents)
