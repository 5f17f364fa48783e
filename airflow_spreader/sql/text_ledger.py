"""The done-ledger of text keys: finished ranges recorded by their TEXT bounds, so a restore is exactly once.

A text key is walked by integer handles (state/text_keys.py) whose texts live in Redis. When Redis loses
them, a restore carves the handles below its mark again from the table: they may stand for other rows than
before, so a ledger keyed by handles could neither skip by them nor trust them. This one records each range
as the rows ``low < key <= high`` (``low`` None: below every key) in the table ``<ledger>_text``, whose two
text columns are in the key column's collation (sql/collation.py): the database compares them with the
asked range's texts, as bound parameters, exactly as it orders the key. A range run again, cut anyhow,
finds the recorded ranges that overlap it, runs the work once on each gap between them that holds rows
(its lowest and highest key, read in the batch's transaction) and records that gap. The rows of one
generation are disjoint; Python never compares two texts (it cannot know the collation's order).

As in the integer ledger (sql/ledger.py), each row is inserted after its work, in the same transaction, and
its primary key (backfill, generation, high) makes a concurrent holder of the same range wait, then roll
back. A range that holds no row records nothing: its run again does nothing, or only rows inserted since,
never done (and a range whose bounds are equal, ``(x, x]``, would otherwise take the ``high`` of the one
below it). On MariaDB the text columns are VARCHAR: the primary key's 3,072 bytes leave 528 characters of
utf8mb4 (more for a narrower character set), and a longer key fails its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from typing import Any

import sqlalchemy as sa

from airflow_spreader.sql.collation import charset_max_bytes, column_collation, same_collation
from airflow_spreader.sql.ledger import (
    DEFAULT_LEDGER_TABLE,
    LedgerKey,
    RangeAlreadyDone,
    check_still_open,
    create_table,
    ledger_table,
    open_transaction,
    sum_rows,
    table_exists,
)
from airflow_spreader.sql.table import SourceTable, TableError
from airflow_spreader.sql.text_keys import key_at, lowest_key

__all__ = ["TextLedger", "TextRange", "TextWork", "text_gaps", "text_ledger_named"]

#: The work for one gap: ``work(lowest_key, highest_key)`` (both inclusive, read now) -> rows changed, or None.
TextWork = Callable[[str, str], "int | None"]
#: MariaDB/InnoDB: bytes of an index key, and those the backfill and generation columns take of it (utf8mb4).
_KEY_BYTES, _OTHER_KEY_BYTES = 3072, 4 * (200 + 40)


@dataclass(frozen=True, slots=True)
class TextRange:
    """A recorded range: the rows ``low < key <= high`` (``low`` None: no lower bound) and what its work said."""

    low: str | None
    high: str
    rows: int | None
    #: Its ``high`` lies inside the asked range (the one above it only overlaps it from above).
    inside: bool = True


def text_gaps(low: str | None, high: str, recorded: Sequence[TextRange]) -> list[tuple[str | None, str]]:
    """The parts of ``(low, high]`` outside the ``recorded`` ranges (those overlapping it, by ascending
    ``high``): ``(low, low_1], (high_1, low_2], ..., (high_k, high]``. A part may hold no row (its lower
    bound at or above its upper one: the row query finds none, no text is compared here); one whose upper
    bound is "below all" (``low_1`` None) is left out. Each lies inside ``(low, high]``: ``low_1 < high``,
    ``high_k > low``, and the middle ones lie between two ranges that overlap it."""
    gaps: list[tuple[str | None, str]] = []
    at = low
    for done in recorded:
        if done.low is not None:
            gaps.append((at, done.low))
        at = done.high
    gaps.append((at, high))
    return gaps


@dataclass(frozen=True)
class TextLedger:
    """The text ledger of the ledger ``name``: the table ``<name>_text`` beside it."""

    name: str = DEFAULT_LEDGER_TABLE

    def __post_init__(self) -> None:
        SourceTable(self.table_name)

    @property
    def table_name(self) -> str:
        return f"{self.name}_text"

    def construct(self, bound: Any = None) -> sa.Table:
        """The table, its text columns of type ``bound`` (plain text when None: the statements' construct)."""
        text: Any = sa.Text() if bound is None else bound
        return ledger_table(SourceTable(self.table_name),
                            sa.Column("high", text, primary_key=True, autoincrement=False),
                            sa.Column("low", text, nullable=True))

    @cached_property
    def table(self) -> sa.Table:
        return self.construct()

    def ensure(self, engine: sa.Engine, source: SourceTable) -> None:
        """Create the table in the collation of ``source``'s key column if it is missing; refuse, with a
        TableError saying what to do, when it exists in another collation (its order would not be the key's)."""
        with engine.connect() as connection:
            wanted = column_collation(connection, source)
            if table_exists(engine, self.table, quiet=False):
                found = column_collation(connection, SourceTable(self.table_name, "high"))
                if not same_collation(found, wanted):
                    raise TableError(
                        f"the text ledger table {self.table_name!r} in the source database compares in collation "
                        f"{found or '(the database default)'!r}, but key column {source.key!r} of table "
                        f"{source.name!r} is in {wanted or '(the database default)'!r}: its ranges would not be "
                        "found in the key's order. Give this DAG a ledger of its own (ledger_table=...), or drop "
                        f"{self.table_name} once no text-key backfill on it is in flight")
                return
            bound = self._text_type(connection, wanted)
        create_table(engine, self.construct(bound), self.name)

    @staticmethod
    def _text_type(connection: sa.Connection, collation: str | None) -> Any:
        if connection.dialect.name in ("mysql", "mariadb"):
            width = (_KEY_BYTES - _OTHER_KEY_BYTES) // (charset_max_bytes(connection, collation) if collation else 4)
            return sa.String(width, collation=collation)
        return sa.Text(collation=collation)

    def run(self, connection: sa.Connection, key: LedgerKey, source: SourceTable, low: str | None,
            high: str | None, work: TextWork) -> int | None:
        """Run ``work`` once on each part of the rows ``low < key <= high`` of ``source`` that no recorded
        range covers and that holds rows, recording each part inside the open transaction ``connection``.

        Returns the rows the work reported (None when it reported none; 0 when the range holds no row and
        nothing is recorded). Raises :class:`RangeAlreadyDone` when recorded ranges cover every row (their
        recorded rows with it), or a concurrent holder recorded a part first; :class:`WorkCommitted` when the
        work ended the transaction itself. ``key`` names the backfill's run, and the range in messages.
        """
        transaction = open_transaction(connection, "TextLedger.run")
        if high is None:  # under "below all": no row
            return 0
        t = self.table.c
        if connection.dialect.name == "sqlite":  # take the writer lock first: SQLite then serialises holders
            connection.execute(self.table.update().where(*self._match(key, high)).values(high=t.high))
        recorded = self._overlapping(connection, key, low, high, lock=connection.dialect.name == "postgresql")
        total: int | None = None
        worked = False
        for gap_low, gap_high in text_gaps(low, high, recorded):
            begin = lowest_key(connection, source, low=gap_low, high=gap_high)
            end = None if begin is None else key_at(connection, source, low=gap_low, high=gap_high, offset=0)
            if begin is None or end is None:
                continue
            rows = work(begin, end)
            check_still_open(connection, transaction, f"({gap_low or ''}..{gap_high}]", key.backfill)
            try:
                connection.execute(self.table.insert().values(
                    backfill=key.backfill, generation=key.generation, low=gap_low, high=gap_high,
                    rows_done=rows, done_at=datetime.now(timezone.utc)))
            except sa.exc.IntegrityError:  # a concurrent holder committed this part meanwhile
                raise RangeAlreadyDone(key, self.rows_of(connection.engine, key, gap_high)) from None
            worked = True
            if rows is not None:
                total = (total or 0) + int(rows)
        if not worked and recorded:
            raise RangeAlreadyDone(key, sum_rows(done.rows for done in recorded if done.inside))
        return total if worked else 0

    def _overlapping(self, connection: sa.Connection, key: LedgerKey, low: str | None, high: str,
                     lock: bool) -> list[TextRange]:
        """The recorded ranges overlapping ``(low, high]``, by ascending high: those whose high lies in it
        (an index range on the primary key) and the first one above it, when it reaches below ``high``."""
        t = self.table.c
        mine = (t.backfill == key.backfill, t.generation == key.generation)
        inside = sa.select(t.low, t.high, t.rows_done).where(
            *mine, t.high <= high, *(() if low is None else (t.high > low,))).order_by(t.high)
        above = sa.select(t.low, t.high, t.rows_done).where(
            *mine, t.high > high, sa.or_(t.low.is_(None), t.low < high)).order_by(t.high).limit(1)
        if lock:
            inside, above = inside.with_for_update(), above.with_for_update()
        found = [TextRange(lo, hi, None if r is None else int(r)) for lo, hi, r in connection.execute(inside)]
        found += [TextRange(lo, hi, None if r is None else int(r), inside=False)
                  for lo, hi, r in connection.execute(above)]
        return found

    def rows_of(self, engine: sa.Engine, key: LedgerKey, high: str) -> int | None:
        """The rows recorded with the range whose upper bound is ``high`` (None: none, or none reported)."""
        with engine.connect() as connection:
            value = connection.execute(sa.select(self.table.c.rows_done).where(*self._match(key, high))).scalar()
        return None if value is None else int(value)

    def recorded(self, bind: sa.Engine | sa.Connection, backfill: str, generation: str) -> list[TextRange]:
        """Every range recorded for one run of a backfill, by ascending high (tests, inspection)."""
        t = self.table.c
        statement = sa.select(t.low, t.high, t.rows_done).where(
            t.backfill == backfill, t.generation == generation).order_by(t.high)
        if isinstance(bind, sa.Engine):
            with bind.connect() as connection:
                rows = connection.execute(statement).all()
        else:
            rows = bind.execute(statement).all()
        return [TextRange(lo, hi, None if r is None else int(r)) for lo, hi, r in rows]

    def _match(self, key: LedgerKey, high: str) -> tuple[sa.ColumnElement[bool], ...]:
        t = self.table.c
        return t.backfill == key.backfill, t.generation == key.generation, t.high == high


@lru_cache(maxsize=64)
def text_ledger_named(name: str) -> TextLedger:
    """One TextLedger (one table construct, so one compiled statement) per ledger name per process."""
    return TextLedger(name)
