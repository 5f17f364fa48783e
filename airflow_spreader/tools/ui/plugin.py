"""The Airflow 3 plugin adding the Backfills page to the Airflow UI.

Registered through the ``airflow.plugins`` entry point of the package (``setup.cfg``), so installing the
provider is enough: no file in the plugins folder. It gives the api-server

- a FastAPI app (``fastapi_apps``) mounted under ``/spreader`` (see :mod:`airflow_spreader.tools.ui.api`);
- a menu entry (``external_views``) "Backfills" under Browse, which the UI shows inside its own frame at
  ``/plugin/spreader-backfills``: same origin, so the page's requests carry the user's ``_token`` cookie.

Airflow loads plugins in every component, task processes included, so this module stays light: the
FastAPI app (and Airflow's API security, slow to import) is built on its first request, in the api-server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/spreader"
PAGE = f"{URL_PREFIX}/backfills"
URL_ROUTE = "spreader-backfills"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class LazyApp:
    """An ASGI app that builds the real one on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from airflow_spreader.tools.ui.api import create_app  # noqa: PLC0415 - on first use

            self._app = create_app()
        await self._app(scope, receive, send)


class SpreaderBackfillsPlugin(AirflowPlugin):
    """Backfills page: progress, rate history, rate in force, ETA, failed ranges, Stop and Go."""

    name = "airflow_spreader"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "airflow-spreader backfills"}]
    external_views = [{"name": "Backfills", "href": PAGE, "url_route": URL_ROUTE, "destination": "nav",
                       "category": "browse"}]
