"""``status`` as text: the console's rendering of :class:`~airflow_spreader.tools.readmodel.status.BackfillStatus`."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from airflow_spreader.core.planner import IdRange
from airflow_spreader.tools.readmodel.governor import HISTORY_SHOWN
from airflow_spreader.tools.readmodel.status import BackfillStatus

BAR_WIDTH = 30
FAILED_SHOWN = 5


def duration_text(seconds: float) -> str:
    """``<1 min``, ``42 min``, ``3 h 12 min``, ``2 d 4 h``: precise enough for a backfill."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "<1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def time_text(at: datetime, zone: tzinfo) -> str:
    return at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def rate_text(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ids/s"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    done = int(fraction * width)
    return f"[{'#' * done}{'.' * (width - done)}] {fraction:6.1%}"


def render(status: BackfillStatus) -> str:
    p, zone = status.progress, status.zone
    lines = [f"{status.name}  {status.state}" + (f"  (DAG {status.dag_id})" if status.dag_id != status.name else "")]
    if status.halt is not None:
        at = f" at {time_text(status.halt.at, zone)}" if status.halt.at else ""
        lines.append(f"  halted{at}: {status.halt.text}")
    if not p.started:
        lines.append("  not started: the DAG's first run captures the table's bounds")
    else:
        skipped = f", {p.ids_skipped:,} skipped" if p.ids_skipped else ""
        if p.counts_rows:
            guess = ("~", " (an estimate from the table's statistics until the walk reaches the bottom)") \
                if p.rows_total_is_estimate else ("", "")
            key_at = None if p.cursor is None else status.key_label(p.cursor)  # a UUID or text key reads as itself
            lines.append(f"  progress  {bar(p.fraction_done)}  {p.rows_done:,} of {guess[0]}{p.rows_total:,} rows"
                         f"{guess[1]}; batches of rows, key now at {key_at}{skipped and f' ({skipped[2:]} ids)'}")
        else:
            lines.append(f"  progress  {bar(p.fraction_done)}  {p.ids_done:,} of {p.total_ids:,} ids{skipped} "
                         f"({p.rows_done:,} rows)")
        recent = f"over the last {duration_text(status.observed.seconds)}"
        lines.append(f"  pace      {rate_text(status.observed.ids_per_second)} {recent}, "
                     f"{rate_text(status.since_start)} since start"
                     + (f" ({time_text(p.started_at, zone)})" if p.started_at else ""))
    lines.append(in_force_line(status))
    if p.started:
        lines.append(f"  batches   {p.batches_done:,} done, {p.in_flight:,} in flight, {p.batches_failed:,} failed "
                     f"({p.ids_failed:,} ids), {plural(p.cycles, 'cycle')}, "
                     f"{plural(status.attempts_lost, 'attempt')} lost (lease ran out: a task died or was killed)")
    passes = status.passes()
    if passes is not None:
        lines.append(f"  passes    {passes_text(passes)}")
    eta = status.eta
    if eta.state == "estimated" and eta.finish is not None:
        left = duration_text(eta.seconds_left(status.now) or 0.0)
        lines.append(f"  ETA       {time_text(eta.finish, zone)} (in {left}), {eta.reason}")
    else:
        lines.append(f"  ETA       {'done' if eta.state == 'done' else 'none'}: {eta.reason}")
    idle = {kind: seconds for kind, seconds in (eta.idle_seconds or {}).items() if seconds > 0}
    if idle:
        spent = ", ".join(f"{kind} {duration_text(seconds)}" for kind, seconds in idle.items())
        lines.append(f"  idle      {spent} in the last {duration_text(status.observed.seconds)}: set apart, "
                     "not counted as slowness")
    if status.verification is not None:
        lines.append(f"  verified  {status.verification_text}")
    for failed in status.failed[:FAILED_SHOWN]:
        error = (failed.error.splitlines() or [""])[0][:100]
        span = status.range_label(IdRange(failed.begin_id, failed.end_id))  # UUID..UUID, (text..text]
        lines.append(f"  failed    {span}  {plural(failed.attempts, 'attempt')}  {error}")
    if len(status.failed) > FAILED_SHOWN:
        lines.append(f"  failed    ... {len(status.failed) - FAILED_SHOWN} more (see --json)")
    lines += quarantine_lines(status)
    lines.extend(governor_lines(status))
    lines.append(f"  airflow   {airflow_text(status)}")
    return "\n".join(lines)


def in_force_line(status: BackfillStatus) -> str:
    """The rate and batch size in force now, and the governor's share in them."""
    force, p, zone = status.in_force(), status.progress, status.zone
    if force is None:
        return f"  in force  unknown: {status.config.problem}"
    then = (f"; {'off' if force['on_peak'] else 'on'} peak ({force['next_per_second']:g}/s) from "
            f"{time_text(datetime.fromisoformat(force['next_change']), zone)}" if force["next_change"] else "")
    unit = "rows" if p.counts_rows else "ids"
    factor = (f" (the calendar's {force['calendar_per_second']:g}/s x{force['rate_factor']:.3g}, governor)"
              if force["rate_factor"] < 1 else "")
    sized = f" (governor; configured {force['configured_batch_size']:,})" if (
        force["batch_size"] != force["configured_batch_size"]) else ""
    peak = "on" if force["on_peak"] else "off"
    return (f"  in force  {peak} peak: {force['per_second']:g} batches/s{factor}"
            f" x {force['batch_size']:,} {unit}{sized} = {force['ids_per_second']:,.1f} {unit}/s{then}")


def passes_text(passes: dict[str, Any]) -> str:
    """``pass 2 of at most 10 (ids 301..500)``, then how the passes ended, if they did."""
    bound = f" of at most {passes['max_passes']:,}" if passes["max_passes"] else ""
    text = f"pass {passes['count']:,}{bound} (ids {passes['floor']:,}..{passes['top']:,})"
    if passes["ids_left_above"]:
        return text + f"; bound reached: {passes['ids_left_above']:,} ids above {passes['top']:,} not visited"
    if passes["looked_at"]:
        return text + f"; no new rows above {passes['top']:,} at the last look"
    return text + ("; follows new rows above the top" if passes["follow_new_rows"] else "")


def quarantine_lines(status: BackfillStatus) -> list[str]:
    """The quarantined keys (poison rows), the first few with their error, and how many in all."""
    count = status.progress.keys_quarantined
    if not count:
        return []
    lines = [f"  quarantined {plural(count, 'key')} (poison rows: their batch was split until they stood alone; "
             f"fix the work, then retry-failed {status.name})"]
    for key in status.quarantined[:FAILED_SHOWN]:
        error = (key.error.splitlines() or [""])[0][:100]
        lines.append(f"  quarantine {key.to_dict()['label']}  {plural(key.attempts, 'attempt')}  {error}")
    if count > FAILED_SHOWN:
        lines.append(f"  quarantine ... {count - FAILED_SHOWN:,} more (see --json)")
    return lines


def governor_lines(status: BackfillStatus) -> list[str]:
    """Why the backfill is held or stopped (or that it is not), its readings, and its last decisions."""
    governor, zone = status.governor, status.zone
    if governor is None:
        return []
    lines = [f"  governor  {governor.message(zone)}"]
    if governor.record is not None:
        total = governor.record.total_held(status.now)
        held = f"held {duration_text(governor.record.seconds_in_decision(status.now))}; " if (
            governor.state == "held") else ""
        lines.append(f"  signals   {governor.readings_text()}; {held}{duration_text(total)} held in all")
    if governor.pace is not None:
        lines.append(f"  adapts    rate factor x{governor.pace.factor:.3g}, batches of {governor.pace.batch_size:,}")
    for entry in governor.history[:HISTORY_SHOWN]:
        at = entry.at.astimezone(zone).strftime("%H:%M:%S") if entry.at else "?"
        lines.append(f"  decided   {at} {entry.previous} -> {entry.decision}: {entry.reason}")
    return lines


def airflow_text(status: BackfillStatus) -> str:
    if status.paused.problem and status.paused.problem == status.config.problem:
        return f"{status.paused.problem}: state from Redis only"
    paused = status.paused.problem or f"DAG {status.dag_id} {'paused' if status.paused.value else 'not paused'}"
    return paused + (f"; {status.config.problem}" if status.config.problem else "")
