"""A small client for the Airflow 3 REST API (``/api/v2``), used by the demo and the end-to-end tests.

It needs no Airflow import: it speaks HTTP to a running api-server. Against a stack started by
:class:`devtools.stack.AirflowStack` no token is needed (``SIMPLE_AUTH_MANAGER_ALL_ADMINS``);
otherwise pass ``token`` (from ``POST /auth/token``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

FINISHED_RUN_STATES = frozenset({"success", "failed"})


class AirflowApiError(RuntimeError):
    """A non-2xx answer from the api-server."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:2000]}")
        self.method = method
        self.path = path
        self.status = status
        self.body = body


def _q(part: str) -> str:
    """Quote one path segment (run ids hold ':' and '+')."""
    return quote(part, safe="")


class AirflowClient:
    """Thin wrapper over ``httpx.Client`` for the endpoints the demo and the tests use."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        ok_statuses: Collection[int] = (),
    ) -> httpx.Response:
        """Send a request; raise :class:`AirflowApiError` unless 2xx or listed in ``ok_statuses``."""
        response = self.http.request(method, path, json=json_body, params=params)
        if response.status_code == 401 and "Authorization" not in self.http.headers:
            # All-admins mode on Airflow 3.1 still wants a token: it hands one out at GET /auth/token.
            token = self.http.get("/auth/token")
            if token.status_code in (200, 201):
                self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
                response = self.http.request(method, path, json=json_body, params=params)
        if not (response.is_success or response.status_code in ok_statuses):
            raise AirflowApiError(method, path, response.status_code, response.text)
        return response

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", path, params=params).json()
        return data

    def paginate(self, path: str, key: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Yield every item of a ``{key: [...], "total_entries": n}`` collection, page by page."""
        offset = 0
        while True:
            page = self.get_json(path, params={"limit": page_size, "offset": offset})
            items: list[dict[str, Any]] = page[key]
            yield from items
            offset += len(items)
            if not items or offset >= int(page.get("total_entries", 0)):
                return

    # -- health and DAGs ------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.get_json("/api/v2/monitor/health")

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as the api-server sees it, or None while it is not parsed yet."""
        response = self.request("GET", f"/api/v2/dags/{_q(dag_id)}", ok_statuses=(404,))
        if response.status_code == 404:
            return None
        data: dict[str, Any] = response.json()
        return data

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.paginate("/api/v2/importErrors", "import_errors"))

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0, poll: float = 1.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; on timeout report the import errors."""
        deadline = time.monotonic() + timeout
        while True:
            dag = self.get_dag(dag_id)
            if dag is not None:
                return dag
            if time.monotonic() > deadline:
                errors = [f"{e.get('filename')}: {e.get('stack_trace')}" for e in self.import_errors()]
                raise TimeoutError(
                    f"DAG {dag_id!r} not visible after {timeout:.0f}s; import errors: {errors or 'none'}"
                )
            time.sleep(poll)

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        data: dict[str, Any] = self.request(
            "PATCH", f"/api/v2/dags/{_q(dag_id)}", json_body={"is_paused": paused}
        ).json()
        return data

    def pause(self, dag_id: str) -> dict[str, Any]:
        return self.set_paused(dag_id, True)

    def unpause(self, dag_id: str) -> dict[str, Any]:
        return self.set_paused(dag_id, False)

    def is_paused(self, dag_id: str) -> bool:
        return bool(self.get_json(f"/api/v2/dags/{_q(dag_id)}")["is_paused"])

    # -- runs and task instances ----------------------------------------------------------------------------

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        """Trigger a manual run (``logical_date`` None) and return its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id is not None:
            body["dag_run_id"] = run_id
        data = self.request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", json_body=body).json()
        return str(data["dag_run_id"])

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.paginate(f"/api/v2/dags/{_q(dag_id)}/dagRuns", "dag_runs"))

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get_json(f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        states: Collection[str] = FINISHED_RUN_STATES,
        timeout: float = 300.0,
        poll: float = 1.0,
    ) -> str:
        """Wait until the run reaches one of ``states``; return that state."""
        deadline = time.monotonic() + timeout
        while True:
            state = str(self.dag_run(dag_id, run_id)["state"])
            if state in states:
                return state
            if time.monotonic() > deadline:
                tis = {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in self.task_instances(dag_id, run_id)}
                raise TimeoutError(
                    f"run {dag_id}/{run_id} is {state!r}, not in {sorted(states)} after {timeout:.0f}s; "
                    f"task instances: {tis}"
                )
            time.sleep(poll)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, mapped ones included (``map_index`` >= 0), with states and dates."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        return list(self.paginate(path, "task_instances"))

    # -- pools and variables --------------------------------------------------------------------------------

    def get_pool(self, name: str) -> dict[str, Any] | None:
        response = self.request("GET", f"/api/v2/pools/{_q(name)}", ok_statuses=(404,))
        if response.status_code == 404:
            return None
        data: dict[str, Any] = response.json()
        return data

    def set_pool(
        self, name: str, slots: int, include_deferred: bool = False, description: str = ""
    ) -> dict[str, Any]:
        """Create the pool, or resize an existing one (takes effect at the next scheduler loop)."""
        body = {"slots": slots, "include_deferred": include_deferred}
        response = self.request(
            "PATCH",
            f"/api/v2/pools/{_q(name)}",
            json_body={"pool": name, **body},  # 3.3 re-validates a full pool (name included)
            params={"update_mask": ["slots", "include_deferred"]},
            ok_statuses=(404,),
        )
        if response.status_code == 404:
            response = self.request(
                "POST", "/api/v2/pools", json_body={"name": name, "description": description, **body}
            )
        data: dict[str, Any] = response.json()
        return data

    def get_variable(self, key: str) -> str | None:
        response = self.request("GET", f"/api/v2/variables/{_q(key)}", ok_statuses=(404,))
        if response.status_code == 404:
            return None
        value = response.json()["value"]
        return None if value is None else str(value)

    def set_variable(self, key: str, value: Any) -> None:
        """Create or update a variable; a non-string value is stored JSON-encoded."""
        text = value if isinstance(value, str) else json.dumps(value)
        body = {"key": key, "value": text}
        response = self.request(
            "PATCH",
            f"/api/v2/variables/{_q(key)}",
            json_body=body,
            params={"update_mask": ["value"]},
            ok_statuses=(404,),
        )
        if response.status_code == 404:
            self.request("POST", "/api/v2/variables", json_body=body)
