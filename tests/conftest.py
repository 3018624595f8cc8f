"""Shared fixtures: a real osmem-server per session, a fresh clone per test, Airflow set up once.

Airflow reads its configuration when first imported, so the environment is set here, before any
test module imports it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "tests"))

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="mailforce-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
for key in [key for key in os.environ if key.startswith("MAILFORCE_")]:
    del os.environ[key]
# Every engine the tests start (the session's osmem-server, and through the embedded launcher the
# demo's and the stacks') collects garbage as the product's embedded engine does: about a fifth
# less engine CPU than Go's default (mailforce.tools.embedded.ENGINE_GOGC).
from mailforce.tools.embedded import ENGINE_GOGC  # noqa: E402  (after the path is set)

os.environ["GOGC"] = ENGINE_GOGC

CORPUS = ROOT.parent / "shared" / "corpus" / "enron-giskard"


@pytest.fixture
def es_url(osmem_clone) -> str:
    """A fresh, empty cluster for one test (a copy-on-write clone of the session's server)."""
    return osmem_clone.url


@pytest.fixture
def es(es_url):
    """The production client code path, pointed at the embedded engine."""
    from mailforce.es.client import ClientOptions, build_client

    client = build_client(ClientOptions(url=es_url, engine="osmem", max_retries=1, request_timeout=120))
    yield client
    client.close()


@pytest.fixture
def settings(extraction_slices):
    """The tests' small settings; a test marked `extraction_slices(1, 2, 8)` runs once per number of
    extraction slices (`pytest_generate_tests`), cut wherever its window has mail."""
    from support import small_settings, with_extraction_slices

    return with_extraction_slices(small_settings(), extraction_slices) if extraction_slices else small_settings()


@pytest.fixture
def extraction_slices() -> int | None:
    """None: the product's own rule (one slice for the tests' small windows); see `settings`."""
    return None


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("extraction_slices")
    if marker is not None:
        metafunc.parametrize("extraction_slices", marker.args, ids=[f"slices{count}" for count in marker.args])


@pytest.fixture(scope="session")
def enron_corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared Enron corpus is not at {CORPUS} (a plain clone outside the workspace)")
    return CORPUS


@pytest.fixture(scope="session")
def enron_documents(osmem_server, enron_corpus) -> list[dict]:
    """The Enron mail as source documents, parsed from RFC 822 once per session (a worker's), in a
    clone of its own: the loader's own tests (tests/test_loader.py) parse it; the others load these."""
    from mailforce.es.client import ClientOptions, build_client
    from mailforce.tools.loader import load_mail
    from support import read_source, small_settings

    settings = small_settings()
    clone = osmem_server.clone()
    es = build_client(ClientOptions(url=clone.url, engine="osmem", max_retries=1, request_timeout=120))
    try:
        report = load_mail(es, [enron_corpus], index=settings.source_index)
        assert report.messages_indexed == 1702, report
        return read_source(es, settings)
    finally:
        es.close()
        clone.close()


@dataclass(frozen=True)
class EnronRun:
    """One run of every stage over the whole Enron mail with the tests' small settings, in a clone of
    its own: tests that only read its outputs share it (never write to it)."""

    es: Any
    settings: Any
    source: list[dict]
    stats: dict[str, Any]


@pytest.fixture(scope="session")
def enron_run(osmem_server, enron_documents):
    from mailforce.es.client import ClientOptions, build_client
    from support import load_source, run, small_settings

    settings = small_settings()
    clone = osmem_server.clone()
    es = build_client(ClientOptions(url=clone.url, engine="osmem", max_retries=1, request_timeout=120))
    try:
        load_source(es, settings, enron_documents)
        yield EnronRun(es, settings, enron_documents, run(es, settings, "enron-full"))
    finally:
        es.close()
        clone.close()


@pytest.fixture
def enron(es, settings, enron_documents) -> list[dict]:
    """The Enron mail in the test's own cluster, under `settings.source_index`; its source documents."""
    import copy

    from support import load_source

    load_source(es, settings, enron_documents)
    return copy.deepcopy(enron_documents)  # a test may change its documents; the next gets them as parsed


@pytest.fixture
def harvest(es, settings, enron) -> list:
    """(id, source, arrival time) of the seeded harvester simulation (tests/harvester.py) on a few
    hundred Enron messages; the source index is left empty for the test to fill as they arrive."""
    from harvester import harvested

    return harvested(es, settings, enron)


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on: a wrong URL that is refused at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """A tool's `main` called in-process reconfigures root logging (as on a command line); later
    tests must not inherit its level and handlers."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# The modules that take minutes start first: with a worker per core and one more (scripts/test.sh, pytest-xdist
# --dist loadfile) the short ones then fill the other workers instead of waiting behind a long tail.
LONGEST_FIRST = ("test_deployed", "test_ui", "test_benchmark_smoke", "test_demo", "test_faults_oracle", "test_scale")


def pytest_collection_modifyitems(config, items):
    def weight(item) -> int:
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=weight)  # stable: the order within a module is kept
