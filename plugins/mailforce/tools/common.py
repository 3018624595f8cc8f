"""What the demo and the standalone UI share: an Airflow home of their own, its environment, mail in.

Operator tooling: the DAG never imports this.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from mailforce.es.client import ClientOptions, build_client
from mailforce.settings import Settings
from mailforce.tools.console import EXIT_FAILED, CliError
from mailforce.tools.embedded import airflow_connection_json
from mailforce.tools.loader import LoadReport, load_mail

REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLE_MAIL = REPO_ROOT / "sample" / "mail"
HOME_MARKER = ".mailforce-home"  # only a directory carrying it is ever wiped

# Settings the demo and the standalone UI give the sample mail unless the caller set them:
# kunaico.com is the sample company's own domain (internal: never an outside relationship), and
# a small partition minimum lets the sample's few thousand role entries map several partitions,
# so a new user sees mapping at work; the sample has no late mail, so the reconciliation DAG runs
# only when triggered. A `MAILFORCE_*` variable of the caller wins.
DEMO_SETTINGS = {
    "MAILFORCE_MIN_PARTITION_WORK": "200",
    "MAILFORCE_MAX_PARTITIONS": "4",
    "MAILFORCE_RECONCILE_SCHEDULE": "none",
}
SAMPLE_SETTINGS = {"MAILFORCE_INTERNAL_DOMAINS": "kunaico.com", **DEMO_SETTINGS}
INTERNAL_DOMAINS_SETTING = "MAILFORCE_INTERNAL_DOMAINS"
# Mail providers shared by strangers: an owner at gmail.com does not make every gmail.com address a
# colleague, so these are never taken as the owner's company domain.
SHARED_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com",
    "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de",
    "gmx.net", "web.de", "mail.com", "yandex.ru", "zoho.com", "fastmail.com", "hey.com",
})


def sample_settings(environ: "dict[str, str] | None" = None, *, sample: bool = True) -> dict[str, str]:
    """The demo settings (with the sample company's internal domain when the mail is the sample),
    minus those the environment already sets."""
    environ = dict(os.environ) if environ is None else environ
    chosen = SAMPLE_SETTINGS if sample else DEMO_SETTINGS
    return {name: value for name, value in chosen.items() if name not in environ}


def owners_internal_domains(owners: Sequence[str]) -> list[str]:
    """The owners' company domains (sorted): their colleagues are internal. Shared providers
    (gmail.com, outlook.com, ...) are left out: they are not one company."""
    domains = {owner.rpartition("@")[2] for owner in owners if "@" in owner}
    return sorted(domain for domain in domains if domain and domain not in SHARED_MAIL_DOMAINS)


class DemoError(CliError):
    """The demo cannot go on; the message says why and where to look (exit 1: the run failed)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message, exit_code)


# --------------------------------------------------------------------------------------------
# The Airflow side: a home of its own, an environment pointing at it, Airflow commands


def prepare_home(home: Path) -> Path:
    """Wipe and recreate ``home``; refuses a non-empty directory this module did not create."""
    home = home.resolve()
    if home.exists():
        if any(home.iterdir()) and not (home / HOME_MARKER).exists():
            raise DemoError(f"{home} is not empty and was not made by mailforce: refusing to wipe it")
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / HOME_MARKER).write_text("Made by mailforce (demo / standalone UI): wiped and recreated on start.\n")
    return home


def airflow_environment(home: Path, engine_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment minus any Airflow setting, plus what points Airflow at ``home``."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    plugins = str(REPO_ROOT / "plugins")
    python_path = [plugins] + [part for part in environment.get("PYTHONPATH", "").split(os.pathsep) if part and part != plugins]
    bin_dir = os.path.dirname(sys.executable)  # `airflow standalone` starts its components as `airflow ...`
    environment.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": plugins,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": airflow_connection_json(engine_url),
            "PYTHONPATH": os.pathsep.join(python_path),
            "PATH": os.pathsep.join([bin_dir, environment.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1",
        }
    )
    environment.update(extra or {})
    return environment


def airflow_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "airflow", *arguments]


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# --------------------------------------------------------------------------------------------
# The source: mail into the engine


def engine_client(engine_url: str):
    return build_client(ClientOptions(url=engine_url, engine="osmem", max_retries=2, request_timeout=60))


def load_source_mail(engine_url: str, paths: Sequence[Path], settings: Settings, account: str | None = None) -> LoadReport:
    """Load the mail into the engine's source index (the loader's rules find each account)."""
    es = engine_client(engine_url)
    try:
        return load_mail(es, paths, index=settings.source_index, account=account)
    finally:
        es.close()
