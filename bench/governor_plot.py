"""The governor benchmark's plot (PNG): the workload's per-second p99 and the backfill's rows/s over the run.

matplotlib is not a dependency of the project: the ``bench`` extra has it (``pip install -e '.[bench]'``);
without it, it is pip-installed into the benchmarks' private tools folder (as py-spy is, not into .venv),
and without that the plot is skipped with a note.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType

from bench.common import percentile
from bench.governor_run import Phase
from bench.profiling import TOOLS


def pyplot() -> ModuleType | None:
    for attempt in range(2):
        try:
            matplotlib = importlib.import_module("matplotlib")
            matplotlib.use("Agg")
            return importlib.import_module("matplotlib.pyplot")
        except ImportError:
            if attempt:
                return None
            result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(TOOLS),
                                     "matplotlib"], capture_output=True, text=True, check=False, timeout=600)
            if result.returncode != 0:
                return None
            if str(TOOLS) not in sys.path:
                sys.path.append(str(TOOLS))
            importlib.invalidate_caches()
    return None


def plot(path: Path, phases: list[Phase], latencies: dict[int, list[float]], ceiling: float,
         batch_size: int = 0) -> bool:
    """Write the PNG; False when matplotlib is not available."""
    plt = pyplot()
    if plt is None:
        return False
    t0 = phases[0].start
    seconds = sorted(latencies)
    p99 = [percentile(latencies[s], 99) for s in seconds]
    rows: dict[int, int] = defaultdict(int)
    for phase in phases:
        for batch in phase.batches:
            rows[int(batch.ended)] += batch.rows
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 6), height_ratios=(3, 2))
    top.plot([s - t0 for s in seconds], p99, lw=0.8, color="tab:blue", label="workload p99 per second")
    top.axhline(ceiling, color="tab:red", lw=1, ls="--", label="1.5 x baseline p99")
    top.set_yscale("log")
    top.set_ylabel("pgbench latency, ms")
    top.legend(loc="upper right", fontsize=8)
    span = range(int(t0), int(max(seconds[-1], max(rows, default=0))) + 1)
    bottom.bar([s - t0 for s in span], [rows.get(s, 0) for s in span], width=1.0, color="tab:green")
    for phase in phases:  # the governor's rate in force: the ceiling times the factor each plan chose
        if phase.factors and phase.per_second and batch_size:
            ends = [at for at, _ in phase.factors[1:]] + [phase.end]
            for (at, factor), end in zip(phase.factors, ends, strict=True):
                bottom.hlines(factor * phase.per_second * batch_size, at - t0, end - t0, color="tab:orange", lw=1.2)
    bottom.set_ylabel("backfill rows/s")
    bottom.set_yscale("symlog", linthresh=1000)
    bottom.set_xlabel("seconds since the baseline started")
    for phase in phases:
        for axis in (top, bottom):
            axis.axvspan(phase.start - t0, phase.end - t0, color="0.92", zorder=0)
        top.annotate(phase.name, (phase.start - t0, 1), xycoords=("data", "axes fraction"),
                     va="top", fontsize=8)
    fig.suptitle("pgbench under the backfill: fixed rates and the governor")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
