"""Airflow 3 plugin: the analyst's report (mailforce.report) served by the Airflow API server.

- ``fastapi_apps``: a small FastAPI app mounted at ``/mailforce-report`` on the API server; ``GET
  /mailforce-report/`` renders the report from the output indices (the DAG's own connection,
  ``settings.conn_id``), at most once a minute (``?refresh=1`` forces it), for signed-in users only
  (the Airflow UI's session token, or a bearer token).
- ``external_views``: a "Mailforce report" entry in the UI's navigation (Browse menu) that shows
  that page inside the Airflow UI (``/plugin/mailforce-report``).

The module only declares things: the report code and FastAPI are imported when the API server builds
its app, and nothing here runs in the scheduler, the DAG processor or the workers.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

URL_PREFIX = "/mailforce-report"
CACHE_SECONDS = 60.0

_cache: dict[int, tuple[float, str]] = {}
_cache_lock = threading.Lock()


def _client(settings):
    """A client from the DAG's Airflow Connection, read server-side (metadata database or secrets)."""
    from airflow.models.connection import Connection

    from mailforce.es.client import build_client, options_from_connection

    return build_client(options_from_connection(Connection.get_connection_from_secrets(settings.conn_id)))


def render_report(top: int, refresh: bool = False) -> str:
    """The report's HTML, cached for CACHE_SECONDS per ``top``."""
    from mailforce.settings import load_settings
    from mailforce.report import build_report

    with _cache_lock:
        cached = _cache.get(top)
        if cached and not refresh and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        settings = load_settings()
        es = _client(settings)
        try:
            document = build_report(es, settings, top=top)
        finally:
            es.close()
        _cache[top] = (time.monotonic(), document)
        return document


def _authenticated_dependency():
    """Airflow's own check that the caller is signed in (None when this Airflow has no such helper)."""
    try:
        from airflow.api_fastapi.core_api.security import requires_authenticated
    except ImportError:  # pragma: no cover - other Airflow versions
        log.warning("mailforce report: no requires_authenticated in this Airflow; the page is not protected")
        return None
    return requires_authenticated()


def create_app() -> Any:
    from fastapi import Depends, FastAPI, Query
    from fastapi.responses import HTMLResponse, PlainTextResponse

    from mailforce.report import DEFAULT_TOP, MAX_TOP

    check = _authenticated_dependency()
    app = FastAPI(title="Mailforce report", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(check)] if check else [])
    app.state.auth_check = check  # tests override it

    @app.get("/", response_class=HTMLResponse)
    def report(top: int = Query(DEFAULT_TOP, ge=1, le=MAX_TOP), refresh: bool = False):
        try:
            return HTMLResponse(render_report(top, refresh))
        except Exception as error:  # noqa: BLE001 - a page that says why, not a bare 500
            log.exception("mailforce report failed")
            return PlainTextResponse(f"The Mailforce report could not be built: {type(error).__name__}: {error}", status_code=503)

    return app


class LazyReportApp:
    """An ASGI app that builds the FastAPI app on its first request (the API server only)."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "mailforce_report_plugin.LazyReportApp"


class MailforceReportPlugin(AirflowPlugin):
    name = "mailforce_report"
    fastapi_apps = [{"app": LazyReportApp(), "url_prefix": URL_PREFIX, "name": "Mailforce report"}]
    external_views = [
        {
            "name": "Mailforce report",
            "href": f"{URL_PREFIX}/",
            "url_route": "mailforce-report",  # shown inside the UI at /plugin/mailforce-report
            "destination": "nav",
            "category": "browse",
        }
    ]
