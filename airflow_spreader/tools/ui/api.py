"""The Backfills page's web app, mounted on Airflow's api-server by the plugin under ``/spreader``.

- ``GET  /spreader/backfills``: the page (static HTML and a small script; it holds no data itself), which
  the UI shows in a frame at ``/plugin/spreader-backfills`` (menu Browse > Backfills).
- ``GET  /spreader/api/backfills``: every backfill started in Redis whose DAG the user may read, and
  ``GET /spreader/api/backfills/{name}`` one of them. Each is the object that
  ``airflow-spreader status NAME --json`` prints, built by the same read model
  (:mod:`airflow_spreader.tools.readmodel`: failed ranges, quarantined keys with their count), plus ``history``
  (ids per second, minute by minute) and ``can_edit``.
- ``POST /spreader/api/backfills/{name}/stop`` and ``/go``: the console's ``stop`` and ``go``.

Authentication and authorization are Airflow's own: the user comes from the api-server's JWT (the UI's
``_token`` cookie, or an ``Authorization: Bearer`` header), through ``GetUserDep``; reading needs read
access to the backfill's DAG, stop and go need edit access (``requires_access_dag("GET" / "PUT")``), as
the auth manager configured decides. Without a valid token: 401 (403 for a malformed one).

A backfill's DAG is the one its tracker recorded at its last plan (``backfill_dag(dag_id, backfill="other")``
gives a backfill a name other than its DAG's id); permissions are checked on that DAG. Redis is
``$REDIS_URL``, else the Airflow connection ``[spreader] redis_conn_id`` (default ``redis_default``),
reached the way the console reaches it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis
from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.configuration import conf
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from airflow_spreader.core.eta import DEFAULT_WINDOW_MINUTES
from airflow_spreader.core.names import config_variable
from airflow_spreader.state.tracker import Tracker, TrackerError
from airflow_spreader.tools.readmodel.sources import AirflowSource, RedisSource, SourceError, one_line
from airflow_spreader.tools.readmodel.status import gather

STATIC = Path(__file__).parent / "static"
HISTORY_MINUTES = 60


def rate_history(done_per_minute: Mapping[int, int], now: datetime, started_at: datetime | None,
                 minutes: int = HISTORY_MINUTES) -> list[dict[str, Any]]:
    """Ids per second in each of the last ``minutes`` minutes up to ``now`` (not before ``started_at``).

    ``done_per_minute`` is the tracker's history (epoch second of a minute's start -> ids done in it).
    A minute only partly elapsed, or partly before the start, is divided by the seconds it covered.
    """
    end = now.timestamp()
    last = math.floor(end / 60) * 60
    first = last - (minutes - 1) * 60
    start = started_at.timestamp() if started_at else None
    if start is not None:
        first = max(first, math.floor(min(start, end) / 60) * 60)
    points = []
    for minute in range(int(first), int(last) + 60, 60):
        covered = min(minute + 60.0, end) - max(float(minute), start if start is not None else float(minute))
        ids = done_per_minute.get(minute, 0)
        points.append({"minute": datetime.fromtimestamp(minute, timezone.utc).isoformat(), "ids": ids,
                       "ids_per_second": ids / max(covered, 5.0)})
    return points


class Backfills:
    """Where the page reads from: the console's sources (one Redis client, a fresh Airflow source per read)."""

    def __init__(self, redis_conn_id: str) -> None:
        self.redis = RedisSource(None, redis_conn_id)

    def client(self) -> redis.Redis:
        return self.redis.client()

    def tracker(self, name: str) -> Tracker:
        """The tracker of a started backfill; 404 otherwise."""
        try:
            tracker = Tracker(name, self.client())
        except ValueError as error:
            raise HTTPException(404, f"unknown backfill {name!r}: {error}") from error
        if not tracker.is_started():
            raise HTTPException(404, f"unknown backfill {name!r}")
        return tracker

    def status(self, tracker: Tracker, airflow: AirflowSource, now: datetime) -> dict[str, Any]:
        """``airflow-spreader status NAME --json``'s object, and the rate history for the chart."""
        status = gather(tracker, airflow, self.dag_of(tracker.name), now, DEFAULT_WINDOW_MINUTES)
        data = status.to_dict()
        data["history"] = rate_history(tracker.done_per_minute(), now, status.progress.started_at)
        return data

    def dag_of(self, name: str) -> str:
        """The DAG of a backfill: the one its tracker recorded, else its name (the console's default)."""
        try:
            return Tracker(name, self.client()).dag_id() or name
        except ValueError:  # not a backfill name: the caller's lookup answers 404
            return name


def create_app(redis_conn_id: str | None = None) -> FastAPI:
    """The app; the plugin builds it on the api-server's first request to it (this module imports Airflow's
    API security, slow to import, which the plugin module must not do: Airflow loads plugins in every task)."""
    backfills = Backfills(redis_conn_id or conf.get("spreader", "redis_conn_id", fallback="redis_default"))
    app = FastAPI(title="airflow-spreader: Backfills", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(SourceError)
    async def unreachable(request: Request, error: SourceError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503)

    @app.exception_handler(redis.RedisError)
    async def redis_error(request: Request, error: redis.RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"Redis at {backfills.redis.where}: {one_line(error)}"}, status_code=503)

    @app.exception_handler(TrackerError)
    async def tracker_error(request: Request, error: TrackerError) -> JSONResponse:
        return JSONResponse({"detail": one_line(error)}, status_code=503)

    def allowed(request: Request, user: BaseUser, method: ResourceMethod, dag_id: str) -> bool:
        try:
            requires_access_dag(method, param_dag_id=dag_id)(request, user)
        except HTTPException as error:
            if error.status_code == 403:
                return False
            raise
        return True

    def authorize(request: Request, user: BaseUser, method: ResourceMethod, name: str) -> None:
        if not allowed(request, user, method, backfills.dag_of(name)):
            raise HTTPException(403, f"Forbidden: {'editing' if method == 'PUT' else 'reading'} the DAG "
                                     f"{backfills.dag_of(name)!r} is not allowed to this user")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("backfills")

    @app.get("/backfills", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "backfills.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/backfills")
    def list_backfills(request: Request, user: GetUserDep) -> dict[str, Any]:
        now, airflow, found = datetime.now(timezone.utc), AirflowSource(), []
        for name in Tracker.names(backfills.client()):
            dag_id = backfills.dag_of(name)
            if not allowed(request, user, "GET", dag_id):
                continue
            tracker = Tracker(name, backfills.client())
            if not tracker.is_started():  # reset since listed: gone
                continue
            data = backfills.status(tracker, airflow, now)
            data["can_edit"] = allowed(request, user, "PUT", dag_id)
            found.append(data)
        return {"now": now.isoformat(), "redis": backfills.redis.where, "backfills": found}

    @app.get("/api/backfills/{name}")
    def get_backfill(name: str, request: Request, user: GetUserDep) -> dict[str, Any]:
        authorize(request, user, "GET", name)
        now, airflow = datetime.now(timezone.utc), AirflowSource()
        try:
            tracker = Tracker(name, backfills.client())
        except ValueError as error:
            raise HTTPException(404, f"unknown backfill {name!r}: {error}") from error
        if not tracker.is_started() and airflow.variable(config_variable(backfills.dag_of(name))).value is None:
            raise HTTPException(404, f"unknown backfill {name!r}")
        data = backfills.status(tracker, airflow, now)
        data["can_edit"] = allowed(request, user, "PUT", backfills.dag_of(name))
        return data

    @app.post("/api/backfills/{name}/stop")
    def stop(name: str, request: Request, user: GetUserDep) -> dict[str, Any]:
        authorize(request, user, "PUT", name)
        tracker = backfills.tracker(name)
        tracker.stop()
        return {"backfill": name, "stopped": True, "in_flight": tracker.progress().in_flight}

    @app.post("/api/backfills/{name}/go")
    def go(name: str, request: Request, user: GetUserDep) -> dict[str, Any]:
        authorize(request, user, "PUT", name)
        backfills.tracker(name).go()
        return {"backfill": name, "stopped": False}

    return app
