"""Logging for the operator tools' command lines (not the DAG: Airflow configures its own)."""

from __future__ import annotations

import logging

WITH_NAMES = "%(levelname)s %(name)s: %(message)s"


def configure_console_logging(level: int = logging.WARNING, fmt: str = WITH_NAMES) -> None:
    """Root logging to stderr at `level`. Replaces what is there: importing airflow installs an INFO
    handler on the root logger, which would print one line per request to the engine."""
    logging.basicConfig(level=level, format=fmt, force=True)
