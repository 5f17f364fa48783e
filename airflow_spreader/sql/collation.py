"""A text column's collation, read from the database: the order a text key's done-ledger must compare in.

The text ledger (sql/text_ledger.py) keeps a range's bounds as texts and asks the database which recorded
ranges overlap a new one; its columns must order exactly like the key column, so they are created in the
key column's collation, read here from the catalog: PostgreSQL's ``pg_attribute.attcollation``, MariaDB's
``information_schema.COLUMNS.COLLATION_NAME``, SQLite's ``COLLATE`` clause in the table's declared schema
(SQLite keeps no catalog of it, and SQLAlchemy's inspector does not reflect it).
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from airflow_spreader.sql.table import SourceTable

__all__ = ["DEFAULT_COLLATION", "charset_max_bytes", "column_collation", "same_collation"]

#: What ``column_collation`` gives for a column in the database's default collation, where the catalog
#: names none (PostgreSQL's "default"; SQLite's BINARY is named as such).
DEFAULT_COLLATION: str | None = None

_SQLITE_COLLATE = re.compile(r"""\bCOLLATE\s+(?:"((?:[^"]|"")+)"|'([^']+)'|\[([^\]]+)\]|`([^`]+)`|(\w+))""",
                             re.IGNORECASE)


def column_collation(bind: sa.Engine | sa.Connection, table: SourceTable) -> str | None:
    """The collation of ``table``'s key column: its name as the database spells it, or None for the
    database's default one (PostgreSQL) or a dialect this does not know. SQLite's default is ``BINARY``."""
    if isinstance(bind, sa.Engine):
        with bind.connect() as connection:
            return column_collation(connection, table)
    dialect = bind.dialect.name
    if dialect == "postgresql":
        return _postgresql(bind, table)
    if dialect in ("mysql", "mariadb"):
        return _mysql(bind, table)
    if dialect == "sqlite":
        return _sqlite(bind, table)
    return None


def same_collation(a: str | None, b: str | None) -> bool:
    """Two collation names naming the same collation (catalogs differ in case; None is the default)."""
    return (a or "").casefold() == (b or "").casefold()


def charset_max_bytes(bind: sa.Connection, collation: str) -> int:
    """MariaDB: the most bytes a character of ``collation``'s character set takes (4 for utf8mb4)."""
    found = bind.execute(sa.text(
        "SELECT cs.MAXLEN FROM information_schema.COLLATIONS c JOIN information_schema.CHARACTER_SETS cs "
        "ON cs.CHARACTER_SET_NAME = c.CHARACTER_SET_NAME WHERE c.COLLATION_NAME = :name"),
        {"name": collation}).scalar()
    return 4 if found is None else int(found)


def _postgresql(bind: sa.Connection, table: SourceTable) -> str | None:
    quote = bind.dialect.identifier_preparer.quote
    qualified = ".".join(quote(part) for part in (table.schema, table.table_name) if part)
    name = bind.execute(sa.text(
        "SELECT co.collname FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation "
        "WHERE a.attrelid = to_regclass(:table) AND a.attname = :column AND NOT a.attisdropped"),
        {"table": qualified, "column": table.key}).scalar()
    return None if name in (None, "default") else str(name)


def _mysql(bind: sa.Connection, table: SourceTable) -> str | None:
    name = bind.execute(sa.text(
        "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) "
        "AND TABLE_NAME = :table AND COLUMN_NAME = :column"),
        {"schema": table.schema, "table": table.table_name, "column": table.key}).scalar()
    return None if name is None else str(name)


def _sqlite(bind: sa.Connection, table: SourceTable) -> str | None:
    master = f"{bind.dialect.identifier_preparer.quote(table.schema)}.sqlite_master" if table.schema \
        else "sqlite_master"
    declared = bind.execute(sa.text(f"SELECT sql FROM {master} WHERE type = 'table' AND lower(name) = lower(:t)"),
                            {"t": table.table_name}).scalar()
    if declared is None:
        return None
    for definition in _column_definitions(str(declared)):
        name, rest = _split_name(definition)
        if name.casefold() == table.key.casefold():
            found = _SQLITE_COLLATE.search(_without_literals(rest))
            if found is None:
                return "BINARY"
            return next(group for group in found.groups() if group is not None).replace('""', '"').upper()
    return None


def _column_definitions(create: str) -> list[str]:
    """The comma-separated parts inside the outer parentheses of a CREATE TABLE, split outside quotes and
    nested parentheses."""
    start = create.find("(")
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in create[start + 1:]:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'`[":
            quote = "]" if char == "[" else char
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                break
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def _split_name(definition: str) -> tuple[str, str]:
    """A column definition's name (unquoted) and the rest of it."""
    pairs = {'"': '"', "`": "`", "[": "]", "'": "'"}
    if definition[:1] in pairs:
        end = definition.find(pairs[definition[0]], 1)
        return definition[1:end], definition[end + 1:]
    name, *rest = re.split(r"\s+", definition, maxsplit=1)
    return name, rest[0] if rest else ""


def _without_literals(text: str) -> str:
    """``text`` with its single-quoted literals (a DEFAULT 'collate x') blanked out."""
    return re.sub(r"'(?:[^']|'')*'", "''", text)
