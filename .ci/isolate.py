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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from devtools.isolation import fresh_database, redis_database


def main(suffix: str, redis_db: int) -> None:
    name = f"spreader_ci_{suffix}"
    exports = {variable: fresh_database(os.environ[variable], name)
               for variable in ("SPREADER_TEST_POSTGRES_URL", "SPREADER_TEST_MARIADB_URL")}
    exports["REDIS_URL"] = redis_database(os.environ["REDIS_URL"], redis_db)
    redis.Redis.from_url(exports["REDIS_URL"]).flushdb()
    for variable, value in exports.items():
        print(f"export {variable}={shlex.quote(value)}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
