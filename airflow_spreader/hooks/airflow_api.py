"""Airflow's own REST API, as a task may reach it: for what the Task SDK cannot tell a task (pools).

A task has no metadata-database access and the Task SDK has no call for pools, so the plan asks the
api-server. With an auth manager on (the default outside tests) that needs a token: the hook takes one
from ``POST /auth/token`` with the login and password of the Airflow connection ``api_conn_id`` (type
``http``; its host, if set, is the api-server's address, else ``[api] base_url``). Without that
connection the request goes unauthenticated, which works only where the API needs no login.
"""

from __future__ import annotations

from typing import Any

import httpx
from airflow.sdk import BaseHook

from airflow_spreader.compat import AirflowNotFoundException, conf
from airflow_spreader.errors import SpreaderError

DEFAULT_API_CONN_ID = "airflow_api"


class AirflowApiError(SpreaderError, RuntimeError):
    """The api-server refused or could not answer; the message says what to set."""


class AirflowApiHook(BaseHook):
    """A small client of the api-server's public REST API, authenticated when a connection gives credentials."""

    conn_name_attr = "api_conn_id"
    default_conn_name = DEFAULT_API_CONN_ID
    conn_type = "http"
    hook_name = "airflow-spreader Airflow API"

    def __init__(self, api_conn_id: str | None = DEFAULT_API_CONN_ID, *, timeout: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_conn_id = api_conn_id
        self.timeout = timeout

    def _connection(self) -> Any:
        if not self.api_conn_id:
            return None
        try:
            return self.get_connection(self.api_conn_id)
        except AirflowNotFoundException:
            return None

    def base_url(self, connection: Any = None) -> str:
        host = (connection.host or "") if connection is not None else ""
        if host and "://" not in host:
            host = f"{connection.schema or 'http'}://{host}" + (f":{connection.port}" if connection.port else "")
        return (host or conf.get("api", "base_url", fallback="") or "").rstrip("/")

    def _headers(self, base: str, connection: Any) -> dict[str, str]:
        if connection is None or not connection.login:
            return {}
        response = httpx.post(f"{base}/auth/token", json={"username": connection.login,
                                                          "password": connection.password or ""},
                              timeout=self.timeout)
        if response.status_code not in (200, 201):
            raise AirflowApiError(
                f"the Airflow connection {self.api_conn_id!r} could not log in at {base}/auth/token "
                f"(HTTP {response.status_code}): check its login and password")
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def get(self, path: str) -> httpx.Response:
        """``GET`` an API path; an :class:`AirflowApiError` when the API refuses us (401/403) and says what to do."""
        connection = self._connection()
        base = self.base_url(connection)
        response = httpx.get(f"{base}{path}", headers=self._headers(base, connection), timeout=self.timeout)
        if response.status_code == 401 and (connection is None or not connection.login):
            # ``[core] simple_auth_manager_all_admins``: Airflow 3.2+ lets us in without a token, 3.1 hands
            # one out at GET /auth/token (elsewhere that answers 403/404 and the 401 stands).
            anonymous = httpx.get(f"{base}/auth/token", timeout=self.timeout)
            if anonymous.status_code in (200, 201):
                response = httpx.get(f"{base}{path}", timeout=self.timeout,
                                     headers={"Authorization": f"Bearer {anonymous.json()['access_token']}"})
        if response.status_code in (401, 403):
            how = (f"the Airflow connection {self.api_conn_id!r} (its login) may not read it"
                   if connection is not None and connection.login else
                   f"give the plan credentials in the Airflow connection {self.api_conn_id!r}, e.g. "
                   f"airflow connections add {self.api_conn_id} --conn-type http --conn-host {base or 'URL'} "
                   "--conn-login USER --conn-password PASSWORD")
        else:
            return response
        raise AirflowApiError(f"the api-server answered HTTP {response.status_code} to GET {base}{path}: {how}")

    def pool_exists(self, pool: str) -> bool | None:
        """Whether the pool exists; None when the api-server cannot be reached or answers otherwise."""
        return self.read_pool(pool)[0]

    def read_pool(self, pool: str) -> tuple[bool | None, int | None]:
        """Whether the pool exists (as ``pool_exists``) and its slots (-1: unlimited) when the answer says."""
        try:
            response = self.get(f"/api/v2/pools/{pool}")
        except httpx.HTTPError:
            return None, None
        if response.status_code == 404:
            return False, None
        if response.status_code != 200:
            return None, None
        try:
            body = response.json()
        except ValueError:
            return True, None
        slots = body.get("slots") if isinstance(body, dict) else None
        return True, slots if isinstance(slots, int) and not isinstance(slots, bool) else None
