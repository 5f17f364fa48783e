"""The plan's pool check against an HTTP server that wants a login, as Airflow's api-server does with an auth
manager on (tests/scheduler/test_backfills_page.py runs it against the real api-server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_spreader.hooks.airflow_api import AirflowApiError, AirflowApiHook

TOKEN = "token-for-tests"
POOLS = {"orders"}


class ApiServer(BaseHTTPRequestHandler):
    """``POST /auth/token`` for admin/secret; ``GET /api/v2/pools/NAME`` with that token only."""

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        sent = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/auth/token" and sent == {"username": "admin", "password": "secret"}:
            self.answer(201, {"access_token": TOKEN})
        else:
            self.answer(401, {"detail": "Invalid credentials"})

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.answer(401, {"detail": "Not authenticated"})
            return
        name = self.path.removeprefix("/api/v2/pools/")
        if name in POOLS:
            self.answer(200, {"name": name})
        else:
            self.answer(404, {"detail": "no such pool"})


@pytest.fixture
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def connect(monkeypatch: pytest.MonkeyPatch, url: str, **fields: str) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", url)
    if fields:
        monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps({"conn_type": "http", **fields}))
    else:
        monkeypatch.delenv("AIRFLOW_CONN_AIRFLOW_API", raising=False)


def test_with_a_login_the_check_takes_a_token_and_tells_a_missing_pool_from_an_existing_one(
        api_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, api_url, login="admin", password="secret")
    hook = AirflowApiHook()
    assert hook.pool_exists("orders") is True
    assert hook.pool_exists("missing") is False


def test_the_connection_host_names_the_api_server(api_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "http://127.0.0.1:9", host=api_url, login="admin", password="secret")
    assert AirflowApiHook().pool_exists("missing") is False


def test_without_a_login_a_refusal_fails_saying_which_connection_to_add(
        api_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, api_url)
    with pytest.raises(AirflowApiError, match=r"HTTP 401 .*airflow connections add airflow_api --conn-type http"):
        AirflowApiHook().pool_exists("missing")


def test_a_wrong_password_fails_naming_the_connection(api_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, api_url, login="admin", password="wrong")
    with pytest.raises(AirflowApiError, match=r"connection 'airflow_api' could not log in .*HTTP 401"):
        AirflowApiHook().pool_exists("orders")


def test_an_api_server_out_of_reach_is_not_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "http://127.0.0.1:9")
    assert AirflowApiHook().pool_exists("orders") is None
