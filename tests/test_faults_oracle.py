"""DAG-level oracle tests through the test proxy with seeded random faults (docs/REAL_CLUSTERS.md).

Each scenario runs the product's own client -> EsProxy (es9 flavour) -> a real osmem, with a seeded
FaultPlan of two parts:

* faults the product rides out (it retries them): 429 for whole bulks and single items, 503 on
  searches and counts, mget item errors, partial shard results, latency, at per-request
  probabilities that leave a whole run a fair chance;
* one lost scroll page per scenario (a 503 on a scroll page, or the connection dropped after the
  page was served), at a seeded position: a scan cannot go on after it (a retried scroll request can
  skip a page), so that run fails loudly with the watermark unmoved and is run again.

Every run either succeeds, or raises with the watermark unmoved and is run again (still under
faults; a last clean run if need be); each scenario has at least one run that succeeded under faults
(with faults injected during it), and the outputs then equal the oracle exactly (v1 kinds), with
nothing lost. The module's last test checks that every fault kind happened: each kind the product
rides out during a successful run, each lost-page kind in a run that failed.
"""

from __future__ import annotations

import random
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
RIDDEN_OUT = (BULK_429, BULK_ITEM_429, SEARCH_503, MGET_ITEM_ERROR, PARTIAL_SHARDS, LATENCY)
LOST_PAGE = (SEARCH_503, DROP_AFTER_FORWARD)  # on a scroll page: the run fails
# Every scenario reads more scroll pages than this (9 to 24 a run: each scan asks at least for its
# closing empty page; 16 or more in every scenario's first runs), so its lost page always happens.
LOST_PAGE_BY = 12
SCENARIOS = 5  # the scenario tests below (the dirty corpus's twice)
TOTALS: Counter = Counter()  # across the module, for the report line
SURVIVED: Counter = Counter()  # faults by kind injected during runs that succeeded under faults
LOST: Counter = Counter()  # lost scroll pages by kind, in runs that failed


def fault_plan(seed: int) -> FaultPlan:
    """The scenario's plan. A whole run makes about 240 requests (on the Enron mail: 42 bulks, 34
    searches, 58 mgets, 26 scroll pages; the lookups of all output kinds share their mgets and the
    best-connected searches one _msearch): the probabilities give every kind several faults a run while the
    chance that a retried request fails every try, and with it the run, stays small (an mget item
    error or a partial count is asked again 3 times, a 503 or a refused partial search 4 times, a
    rejected bulk or bulk item 5 times).
    The lost scroll page is the scenario's `nth` scroll page: one failed run per scenario, wherever
    the seed puts it; the seed also chooses how the page is lost (both kinds happen in the module)."""
    draw = random.Random(seed)
    return FaultPlan([
        Rule(LOST_PAGE[seed % len(LOST_PAGE)], op="scroll", nth=draw.randint(1, LOST_PAGE_BY)),
        Rule(BULK_429, probability=0.08),
        Rule(BULK_ITEM_429, probability=0.3, item_probability=0.2),
        Rule(SEARCH_503, op=("search", "count", "msearch", "open_pit"), probability=0.08),
        Rule(MGET_ITEM_ERROR, probability=0.1),
        Rule(PARTIAL_SHARDS, op=("search", "count", "msearch"), probability=0.08, drop_hits=0.5),
        Rule(LATENCY, probability=0.03, latency_ms=20),
    ])


def lost_page(fault) -> bool:
    return fault.op == "scroll" and fault.kind in LOST_PAGE


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """The same retries with short pauses: what is tested is that they happen, not how long they wait."""
    monkeypatch.setattr(reads, "MGET_RETRY_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(writes, "INITIAL_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(writes, "MAX_BACKOFF_SECONDS", 0.05)


class FaultyRuns:
    def __init__(self, es, es_url: str, settings, seed: int) -> None:
        self.es, self.settings = es, settings
        self.proxy = EsProxy(es_url, flavour="es9", faults=fault_plan(seed), seed=seed).start()
        self.client = build_client(ClientOptions(url=self.proxy.url, engine="es9", max_retries=4, request_timeout=60,
                                                 retry_backoff_base=0.01, retry_backoff_cap=0.05))
        self.clean = build_client(ClientOptions(url=es_url, engine="osmem", max_retries=1))
        self.runs = self.failed = self.succeeded = self.clean_runs = 0
        self.survived: Counter = Counter()  # faults injected during the runs that succeeded under faults
        self.lost: Counter = Counter()  # lost scroll pages, all in runs that failed

    def run(self, run_id: str, run_end=FAR_FUTURE_RUN_END, **kwargs: Any) -> None:
        """The run under faults until it succeeds; each failure leaves the watermark where it was."""
        for attempt in range(ATTEMPTS_UNDER_FAULTS):
            watermark = read_watermark(self.es, self.settings)
            self.runs += 1
            before = len(self.proxy.faults)
            try:
                run_once(self.client, self.settings, RunRequest(), run_end, f"{run_id}-{attempt}", **kwargs)
            except Exception as error:  # noqa: BLE001 - any failure must be loud and leave no watermark
                self.failed += 1
                self.lost.update(f.kind for f in self.proxy.faults[before:] if lost_page(f))
                print(f"{run_id} attempt {attempt} failed: {type(error).__name__}: {str(error)[:160]}")
                assert read_watermark(self.es, self.settings) == watermark
                if kwargs:
                    return  # a simulated crash: the caller re-runs
            else:
                during = self.proxy.faults[before:]
                assert not [f for f in during if lost_page(f)], "a run went on after a lost scroll page"
                self.succeeded += 1
                self.survived.update(f.kind for f in during)
                return
        self.runs += 1
        self.clean_runs += 1
        run_once(self.clean, self.settings, RunRequest(), run_end, f"{run_id}-clean")  # a clean re-run

    def finish(self, source: list[dict]) -> None:
        expected = assert_matches_oracle(self.es, self.settings, source, [EVERYTHING])
        compared = sum(summarise(expected).values())
        counts = self.proxy.fault_counts
        TOTALS.update(counts)
        TOTALS.update({"runs": self.runs, "failed runs": self.failed, "succeeded under faults": self.succeeded,
                       "clean runs": self.clean_runs, "documents compared": compared, "scenarios": 1})
        SURVIVED.update(self.survived)
        LOST.update(self.lost)
        print(f"faults {dict(counts)}; runs {self.runs} ({self.failed} failed, {self.succeeded} succeeded under "
              f"faults, {self.clean_runs} clean); faults in the successful runs {dict(self.survived)}; lost scroll "
              f"pages {dict(self.lost)}; documents compared {compared}; differences 0; totals so far {dict(TOTALS)}")
        assert sum(counts.values()) > 0
        assert self.succeeded > 0, "no run succeeded under faults"
        assert sum(self.survived.values()) > 0, "the runs that succeeded under faults met none"
        assert sum(self.lost.values()) == 1, "the scenario's scroll page was not lost, or not in a failed run"
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


def test_every_fault_kind_happened():
    """Across the scenarios: each kind the product rides out during a run that succeeded, each way to
    lose a scroll page in a run that failed (with the watermark unmoved)."""
    if TOTALS["scenarios"] < SCENARIOS:
        pytest.skip(f"{TOTALS['scenarios']} of the {SCENARIOS} scenarios ran (the whole module is needed)")
    print(f"faults in successful runs {dict(SURVIVED)}; lost scroll pages {dict(LOST)}; totals {dict(TOTALS)}")
    assert {kind for kind in RIDDEN_OUT if SURVIVED[kind] == 0} == set()
    assert {kind for kind in LOST_PAGE if LOST[kind] == 0} == set()
