"""Print `export` lines that give one matrix leg databases of its own, so that legs can run side by side.

Usage: python .ci/isolate.py SUFFIX REDIS_DB. Reads REDIS_URL, SPREADER_TEST_POSTGRES_URL and
SPREADER_TEST_MARIADB_URL (the shared servers), creates (afresh) the databases ``spreader_ci_SUFFIX`` on
PostgreSQL and MariaDB, empties Redis database REDIS_DB, and prints the variables pointing at them.
"""

from __future__ import annotations

import os
import shlex
import sys

import redis
import sqlalchemy as sa


def main(suffix: str, redis_db: int) -> None:
    name = f"spreader_ci_{suffix}"
    urls = {"SPREADER_TEST_POSTGRES_URL": os.environ["SPREADER_TEST_POSTGRES_URL"],
            "SPREADER_TEST_MARIADB_URL": os.environ["SPREADER_TEST_MARIADB_URL"]}
    exports = {}
    for variable, url in urls.items():
        server = sa.make_url(url)
        engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            quoted = engine.dialect.identifier_preparer.quote(name)
            force = " WITH (FORCE)" if engine.dialect.name == "postgresql" else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}{force}"))
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
        engine.dispose()
        exports[variable] = server.set(database=name).render_as_string(hide_password=False)
    base = redis.Redis.from_url(os.environ["REDIS_URL"]).connection_pool.connection_kwargs
    client = redis.Redis(host=base.get("host", "127.0.0.1"), port=base.get("port", 6379), db=redis_db,
                         username=base.get("username"), password=base.get("password"))
    client.flushdb()
    auth = f"{base.get('username') or ''}:{base.get('password')}@" if base.get("password") else ""
    exports["REDIS_URL"] = f"redis://{auth}{base.get('host', '127.0.0.1')}:{base.get('port', 6379)}/{redis_db}"
    for variable, value in exports.items():
        print(f"export {variable}={shlex.quote(value)}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
