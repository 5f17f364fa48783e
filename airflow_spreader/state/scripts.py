"""The Lua scripts that make a batch's state changes atomic, loaded once per client."""

from __future__ import annotations

from functools import cache
from importlib import resources

SCRIPT_NAMES = ("start", "claim", "begin", "complete", "release", "fail", "retry_failed", "follow", "skip",
                "isolate", "verify_record", "verify_redo", "verify_next", "governor_record", "idle_close",
                "text_mint")


@cache
def source(name: str) -> str:
    if name not in SCRIPT_NAMES:
        raise KeyError(f"no Lua script named {name!r}")
    return resources.files("airflow_spreader.state").joinpath(f"lua/{name}.lua").read_text()
