"""The done-ledger: one row per finished range, written in the source database inside the batch's transaction.

Redis can only learn that a range is done after the batch's transaction has committed. A worker killed
between the two leaves the range in flight, and it is planned and run again: at least once, not exactly
once. The ledger closes that window. A batch inserts its range's row in its transaction right after the
work (never before: work that commits early must not commit the mark), so both commit together or not
at all; a later run of the same range finds the row and skips the work. The row's primary key also makes
a concurrent holder of the same range (a lease that expired under a slow batch) wait on the first one's
row at its insert, then roll back: never both commit.

Rows are keyed by backfill name, the tracker's *generation* (new at each start after a reset, kept by a
restore from the checkpoint) and the range's first id, so "exactly once" holds per backfill run. It costs
one small row per batch (about 5.7 million rows for 400 million ids in batches of 70): delete a finished
backfill's rows with ``DELETE FROM spreader_ledger WHERE backfill = '...'``.

A UUID key's ranges (their integer images, core/keys.py, up to 2^131) do not fit BIGINT: they go to a
table of their own, ``<name>_uuid``, whose bounds are fixed-width decimal text (``WIDE_DIGITS`` digits,
zero-padded), which orders like the numbers in every collation, so the same SQL finds the overlaps.
A text key's ranges are recorded by their texts, in ``<name>_text`` (sql/text_ledger.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from typing import Any

import sqlalchemy as sa

from airflow_spreader.errors import SpreaderError
from airflow_spreader.sql.table import SourceTable, TableError, safe_url

__all__ = ["DEFAULT_LEDGER_TABLE", "Ledger", "LedgerKey", "RangeAlreadyDone", "SubRangeWork", "WorkCommitted",
           "check_still_open", "create_table", "ledger_named", "ledger_table",
           "open_transaction", "sum_rows", "table_exists", "uncovered"]

#: The work for one uncovered sub-range: ``work(begin_id, end_id)`` -> rows changed, or None.
SubRangeWork = Callable[[int, int], "int | None"]

DEFAULT_LEDGER_TABLE = "spreader_ledger"
#: Digits of a UUID key's image in the ``_uuid`` ledger (the largest image, 5 << 128, has 39).
WIDE_DIGITS = 40


class RangeAlreadyDone(SpreaderError):
    """The range's ledger row exists: its work committed before. ``rows`` is what it reported then."""

    def __init__(self, key: LedgerKey, rows: int | None) -> None:
        super().__init__(f"range {key.begin_id}-{key.end_id} of backfill {key.backfill!r} is already done "
                         f"(generation {key.generation})")
        self.key = key
        self.rows = rows


class WorkCommitted(SpreaderError, RuntimeError):
    """The work ended the batch's transaction itself: nothing was recorded, so a retry runs the range again."""


@dataclass(frozen=True, slots=True)
class LedgerKey:
    """Which range of which backfill run a ledger row stands for."""

    backfill: str
    generation: str
    begin_id: int
    end_id: int


@dataclass(frozen=True)
class Ledger:
    """The ledger table ``name`` (``schema.table`` allowed) in the source database; ``wide``: the one of
    UUID keys beside it, ``<name>_uuid``."""

    name: str = DEFAULT_LEDGER_TABLE
    wide: bool = False

    def __post_init__(self) -> None:
        SourceTable(self.name)  # the same name rules as a source table

    @cached_property
    def table(self) -> sa.Table:
        bound: Any = sa.String(WIDE_DIGITS) if self.wide else sa.BigInteger
        return ledger_table(SourceTable(f"{self.name}_uuid" if self.wide else self.name),
                            sa.Column("begin_id", bound, primary_key=True, autoincrement=False),
                            sa.Column("end_id", bound, nullable=False))

    def ensure(self, engine: sa.Engine) -> None:
        """Create the table if it is missing; say clearly what to do when that is not allowed.

        An unreachable database raises the driver's error as it is (a passing outage: retry).
        """
        if not table_exists(engine, self.table, quiet=False):
            create_table(engine, self.table, self.name)

    def enter(self, connection: sa.Connection, key: LedgerKey) -> None:
        """Record the range as done inside the open transaction ``connection``, before its work.

        Raises :class:`RangeAlreadyDone` when the range is recorded already; the caller must then leave
        the transaction (rolling it back) without doing the work.
        """
        statement = self.table.insert().values(
            backfill=key.backfill, generation=key.generation, begin_id=self._bound(key.begin_id),
            end_id=self._bound(key.end_id), done_at=datetime.now(timezone.utc))
        try:
            connection.execute(statement)
        except sa.exc.IntegrityError:
            raise RangeAlreadyDone(key, self.rows_of(connection.engine, key)) from None

    def run(self, connection: sa.Connection, key: LedgerKey, work: SubRangeWork) -> int | None:
        """Run ``work`` once for each sub-range of ``key`` not yet recorded, inside the open transaction.

        Returns the rows the work reported (None when it reported none). Raises
        :class:`RangeAlreadyDone` when every id is recorded already (the range's recorded rows with it),
        and :class:`WorkCommitted` when the work committed or rolled back the transaction itself.
        Each sub-range's row is inserted only after its work returned in the still-open transaction, so
        an early commit by the work can never commit a mark; a concurrent holder that recorded the same
        sub-range first makes this insert wait, then fail, and the whole transaction is rolled back.
        """
        transaction = open_transaction(connection, "Ledger.run")
        if connection.dialect.name == "sqlite":  # take the writer lock first: SQLite then serialises holders
            connection.execute(self.table.update().where(*self._match(key)).values(end_id=self.table.c.end_id))
        recorded = self._overlapping(connection, key, lock=connection.dialect.name == "postgresql")
        gaps = uncovered(key.begin_id, key.end_id, [(begin, end) for begin, end, _ in recorded])
        if not gaps:
            raise RangeAlreadyDone(key, sum_rows(rows for begin, _, rows in recorded if begin >= key.begin_id))
        total: int | None = None
        for begin, end in gaps:
            rows = work(begin, end)
            check_still_open(connection, transaction, f"{begin}-{end}", key.backfill)
            sub = LedgerKey(key.backfill, key.generation, begin, end)
            try:
                connection.execute(self.table.insert().values(
                    backfill=key.backfill, generation=key.generation, begin_id=self._bound(begin),
                    end_id=self._bound(end), rows_done=rows, done_at=datetime.now(timezone.utc)))
            except sa.exc.IntegrityError:  # a concurrent holder committed this sub-range meanwhile
                raise RangeAlreadyDone(sub, self.rows_of(connection.engine, sub)) from None
            if rows is not None:
                total = (total or 0) + int(rows)
        return total

    def _overlapping(self, connection: sa.Connection, key: LedgerKey,
                     lock: bool) -> list[tuple[int, int, int | None]]:
        t = self.table.c
        query = (sa.select(t.begin_id, t.end_id, t.rows_done)
                 .where(t.backfill == key.backfill, t.generation == key.generation,
                        t.begin_id <= self._bound(key.end_id), t.end_id >= self._bound(key.begin_id))
                 .order_by(t.begin_id))
        if lock:
            query = query.with_for_update()
        return [(int(b), int(e), None if r is None else int(r)) for b, e, r in connection.execute(query)]

    def set_rows(self, connection: sa.Connection, key: LedgerKey, rows: int) -> None:
        """Keep the work's row count with the mark, so that a skipped re-run still reports it."""
        t = self.table.c
        connection.execute(self.table.update().where(*self._match(key)).values({t.rows_done: rows}))

    def rows_of(self, engine: sa.Engine, key: LedgerKey) -> int | None:
        with engine.connect() as connection:
            value = connection.execute(sa.select(self.table.c.rows_done).where(*self._match(key))).scalar()
        return None if value is None else int(value)

    def _match(self, key: LedgerKey) -> tuple[sa.ColumnElement[bool], ...]:
        t = self.table.c
        return t.backfill == key.backfill, t.generation == key.generation, t.begin_id == self._bound(key.begin_id)

    def _bound(self, value: int) -> int | str:
        """A range bound as its column holds it: the integer, or zero-padded decimal text in the UUID ledger."""
        return f"{value:0{WIDE_DIGITS}d}" if self.wide else value


def ledger_table(where: SourceTable, key: sa.Column[Any], other: sa.Column[Any]) -> sa.Table:
    """A ledger's table: the backfill run, the range (``key``, the last column of the primary key, and its
    ``other`` bound) and what its work did; the integer, UUID and text ledgers differ only in the range."""
    return sa.Table(
        where.table_name, sa.MetaData(),
        sa.Column("backfill", sa.String(200), primary_key=True),
        sa.Column("generation", sa.String(40), primary_key=True),
        key, other,
        sa.Column("rows_done", sa.BigInteger, nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        schema=where.schema,
    )


@lru_cache(maxsize=64)
def ledger_named(name: str, wide: bool = False) -> Ledger:
    """One Ledger (and one table construct, so one compiled statement) per name per process; ``wide``
    for a UUID key's ranges (``is_uuid_image``)."""
    return Ledger(name, wide)


def uncovered(begin_id: int, end_id: int, recorded: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The sub-ranges of ``begin_id..end_id`` (inclusive) that no recorded range covers, ascending."""
    gaps, at = [], begin_id
    for begin, end in sorted(recorded):
        if end < at:
            continue
        if begin > end_id:
            break
        if begin > at:
            gaps.append((at, begin - 1))
        at = max(at, end + 1)
        if at > end_id:
            return gaps
    if at <= end_id:
        gaps.append((at, end_id))
    return gaps


def create_table(engine: sa.Engine, table: sa.Table, name: str) -> None:
    """Create the ledger table ``table`` (of the ledger ``name``); a TableError says what to do when not allowed."""
    try:
        table.create(engine, checkfirst=True)
    except sa.exc.DBAPIError as error:
        if table_exists(engine, table):  # another planner created it meanwhile
            return
        first_line = str(getattr(error, "orig", error)).strip().splitlines()[0]
        raise TableError(
            f"cannot create the ledger table {name!r} in {safe_url(engine.url)}: {first_line}. "
            "Create it with a user that may (airflow-spreader's docs/production.md has the DDL), or "
            "pass ledger_table=None to the DAG factory (then a batch killed after its commit is done "
            "again: at least once)"
        ) from error


def open_transaction(connection: sa.Connection, who: str) -> sa.Transaction:
    """The connection's open transaction, which the work and the ledger's rows share."""
    transaction = connection.get_transaction()
    if transaction is None or not transaction.is_active:
        raise TypeError(f"{who} needs a connection inside an open transaction (engine.begin())")
    return transaction


def check_still_open(connection: sa.Connection, transaction: sa.Transaction, label: str, backfill: str) -> None:
    """Raise :class:`WorkCommitted` when the work ended ``transaction`` itself (range ``label``)."""
    if connection.get_transaction() is not transaction or not transaction.is_active:
        raise WorkCommitted(
            f"the work committed the batch's transaction itself (range {label} of backfill {backfill!r}); the "
            "work must leave commit and rollback to the batch. Nothing was recorded in the done-ledger, so the "
            "retry runs the range again: what the work committed early is done twice unless it is idempotent")


def sum_rows(rows: Iterable[int | None]) -> int | None:
    known = [r for r in rows if r is not None]
    return sum(known) if known else None


def table_exists(engine: sa.Engine, table: sa.Table, quiet: bool = True) -> bool:
    try:
        with engine.connect() as connection:
            return sa.inspect(connection).has_table(table.name, schema=table.schema)
    except sa.exc.DBAPIError:
        if quiet:
            return False
        raise
