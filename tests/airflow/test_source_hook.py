"""SQLAlchemy URLs built from Airflow connections."""

from __future__ import annotations

import json

import pytest

from airflow_spreader.hooks.source import SourceDatabaseHook


@pytest.mark.parametrize(("connection", "url"), [
    ({"conn_type": "sqlite", "host": "/tmp/x.db"}, "sqlite:////tmp/x.db"),
    ({"conn_type": "postgres", "host": "db", "port": 5433, "login": "u", "password": "p@ss", "schema": "app"},
     "postgresql+psycopg2://u:p%40ss@db:5433/app"),
    ({"conn_type": "mysql", "host": "db", "login": "root", "schema": "test"}, "mysql+pymysql://root@db/test"),
    ({"conn_type": "generic", "extra": {"sqlalchemy_url": "sqlite:///other.db"}}, "sqlite:///other.db"),
])
def test_urls_follow_the_connection(connection: dict, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SPREADER_URL_TEST", json.dumps(connection))
    built = SourceDatabaseHook("spreader_url_test").sqlalchemy_url()
    assert built.render_as_string(hide_password=False) == url


def test_an_unknown_connection_type_names_what_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SPREADER_URL_TEST", json.dumps({"conn_type": "oracle", "host": "db"}))
    with pytest.raises(ValueError, match=r"type 'oracle'; airflow-spreader knows \['mariadb', 'mysql'"):
        SourceDatabaseHook("spreader_url_test").sqlalchemy_url()
