"""Text keys: the handles a walk hands out, the texts they stand for, and the database reads behind them.

A text key has no integer image (core/keys.py): its order is the database's collation. So the walk gives each
row it reads an integer *handle*, descending by one a row from the top (``core.carving.text_ranges``), and
keeps the handle -> text map of the rows it cuts at in the backfill's Redis namespace (``Keys.texts``, one
entry a range not done for good: ``prune`` forgets the rest). A range of handles ``[b, e]`` holds the rows
with ``text(b - 1) < key <= text(e)``, compared by the database. The tracker, leases, Lua scripts and
bisection keep working on integers (the done-ledger records a range by its texts, sql/text_ledger.py): a
range's size is the rows it held when planned, and a bisection midpoint is a row. A handle nobody minted (a
midpoint, or a top whose mint was lost in a crash) gets its text when first needed, from the row that many
places below the nearest minted handle above it, between its two minted neighbours (so texts stay in the
handles' order), minted only if those neighbours are unchanged (``text_mint.lua``). Python never compares two
texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias, cast

import sqlalchemy as sa

from airflow_spreader.core.carving import text_ranges
from airflow_spreader.core.keys import (
    TEXT_BOTTOM,
    TEXT_MIN,
    TEXT_TOP,
    is_text_image,
    key_label,
    text_handle,
    text_image,
)
from airflow_spreader.core.planner import IdRange
from airflow_spreader.errors import SpreaderError
from airflow_spreader.sql.table import SourceTable
from airflow_spreader.sql.text_keys import key_at, lowest_key, read_text_rows
from airflow_spreader.state.source_record import recorded_source
from airflow_spreader.state.tracker import Tracker

__all__ = ["BELOW_ALL", "KeyLabels", "TextCarver", "TextKeyError", "TextKeyStore", "TextKeys", "TextValue",
           "key_labels", "text_keys_of"]

#: What a handle stands for: a key's text, or BELOW_ALL (None): below every key, no lower bound.
TextValue: TypeAlias = str | None
BELOW_ALL: TextValue = None
_RETRIES = 8


class TextKeyError(SpreaderError, RuntimeError):
    """A text key's handle cannot be resolved (its map in Redis is gone)."""


def _hex(image: int) -> str:
    return f"{text_handle(image):032x}"


def _decode_hex(member: bytes | str) -> str:
    return (member.decode() if isinstance(member, bytes) else member)[:32]


def _encode(value: TextValue) -> str:
    return "-" if value is None else "=" + value


def _decode(member: bytes | str) -> tuple[int, TextValue]:
    raw = member.decode() if isinstance(member, bytes) else member
    value = raw[33:]
    return text_image(int(raw[:32], 16)), None if value == "-" else value[1:]


class TextKeyStore:
    """The handle -> text map of one backfill's text key, in Redis (a lexicographically sorted set)."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.key = tracker.keys.texts

    def begin(self, top: str) -> tuple[int, int]:
        """Mint the top row's handle and the one below all keys; the (max_id, min_id) to start the tracker."""
        self.mint({TEXT_TOP: top, TEXT_BOTTOM: BELOW_ALL})
        return TEXT_TOP, TEXT_MIN

    def mint(self, values: Mapping[int, TextValue]) -> None:
        """Record handles' texts; a handle already minted keeps its text (the first read wins)."""
        args: list[str] = ["", ""]
        for image, value in values.items():
            args += [_hex(image), _encode(value)]
        if len(args) > 2:
            self.tracker.run_script("text_mint", [self.key], *args)

    def value(self, image: int) -> tuple[bool, TextValue]:
        """(True, its text) for a minted handle, (False, None) for one not minted."""
        hex_ = _hex(image)
        found = self.tracker.redis.zrangebylex(self.key, f"[{hex_}:", f"({hex_};", 0, 1)
        return (True, _decode(found[0])[1]) if found else (False, None)

    def neighbours(self, image: int) -> tuple[tuple[int, TextValue] | None, tuple[int, TextValue] | None]:
        """The minted handles just below and just above ``image`` (None where there is none)."""
        hex_ = _hex(image)
        below = self.tracker.redis.zrevrangebylex(self.key, f"({hex_}:", "-", 0, 1)
        above = self.tracker.redis.zrangebylex(self.key, f"({hex_};", "+", 0, 1)
        return (_decode(below[0]) if below else None), (_decode(above[0]) if above else None)

    def at_or_above(self, image: int) -> tuple[int, TextValue]:
        """``image`` and its text when minted, else the nearest minted handle above it and its text: a
        checkpoint restored from there redoes a little more, never less."""
        minted, value = self.value(image)
        if minted:
            return image, value
        above = self.neighbours(image)[1]
        if above is None:
            raise TextKeyError(f"backfill {self.tracker.name!r}: no text minted at or above handle "
                               f"{text_handle(image)}")
        return above

    def mint_between(self, image: int, value: TextValue, below: int, above: int) -> tuple[bool, TextValue]:
        """Mint ``image`` unless its minted neighbours are no longer ``below``/``above``: (False, None) then."""
        result = self.tracker.run_script("text_mint", [self.key], _hex(below), _hex(above), _hex(image),
                                         _encode(value))
        if result is None:
            return False, None
        return True, _decode(f"{_hex(image)}:{result}")[1]

    def prune(self) -> int:
        """Forget the texts of handles above the nearest minted one at or above the low-water mark: every
        range up there is done for good (held ranges, quarantined keys and the cursor lie at or below the
        mark, which only moves down), so the map holds O(ranges not done), not O(batches planned). The one
        kept above the mark lets a handle below it still be read (its text, a checkpoint). Returns how many."""
        mark = self.tracker.low_water_mark()
        if mark is None:
            return 0
        found = self.tracker.redis.zrangebylex(self.key, f"[{_hex(mark)}:", "+", 0, 1)
        if not found:
            return 0
        return int(self.tracker.redis.zremrangebylex(self.key, f"({_decode_hex(found[0])};", "+"))

    def entries(self) -> dict[int, TextValue]:
        """Every minted handle (tests): O(ranges not done)."""
        members = cast("list[bytes]", self.tracker.redis.zrange(self.key, 0, -1))
        return dict(_decode(m) for m in members)

    def label(self, image: int) -> str:
        """A key as the UI shows it: its text, ``(below all)``, or ``text#handle`` before it is minted."""
        return KeyLabels(self).key(image)

    def range_label(self, id_range: IdRange) -> str:
        """``(low..high]``: the rows above the text of the handle below the range, up to its end's text."""
        return KeyLabels(self).range(id_range)


@dataclass
class KeyLabels:
    """How keys and ranges read in the UI, the CLI and the logs: integers and UUIDs as ``core.keys`` labels
    them, a text key's handles as their texts; ``extra``: texts not minted yet (a preview's)."""

    store: TextKeyStore
    extra: Mapping[int, TextValue] = field(default_factory=dict)

    def key(self, image: int) -> str:
        if not is_text_image(image):
            return key_label(image)
        minted, value = (True, self.extra[image]) if image in self.extra else self.store.value(image)
        if not minted:
            return key_label(image)
        return "(below all)" if value is None else value

    def range(self, id_range: IdRange) -> str:
        """A text range reads ``(low..high]`` (``(..high]`` with no lower bound); others as ``IdRange.label``."""
        if not is_text_image(id_range.end_id):
            return id_range.label
        low = self.key(id_range.begin_id - 1)
        return f"({'' if low == '(below all)' else low}..{self.key(id_range.end_id)}]"


def key_labels(tracker: Tracker, extra: Mapping[int, TextValue] | None = None) -> KeyLabels:
    """The labels of a backfill's keys (texts read from its Redis only for a text key)."""
    return KeyLabels(TextKeyStore(tracker), dict(extra or {}))


@dataclass
class TextKeys:
    """A text key's handles resolved to texts: from Redis, else read from the table once and minted."""

    store: TextKeyStore
    bind: sa.Engine
    table: SourceTable

    def text_of(self, image: int) -> TextValue:
        """The text ``image`` stands for (resolving and minting it when nobody has)."""
        for _ in range(_RETRIES):
            minted, value = self.store.value(image)
            if minted:
                return value
            below, above = self.store.neighbours(image)
            if below is None or above is None:
                raise TextKeyError(f"backfill {self.store.tracker.name!r}: handle {text_handle(image)} of a text "
                                   "key lies outside its walk (the map in Redis was lost?)")
            if above[1] is None:  # under a "below all" handle there are no keys
                found: TextValue = BELOW_ALL
            else:
                found = key_at(self.bind, self.table, low=below[1], high=above[1], offset=above[0] - image)
                if found is None:  # fewer rows there than when planned: the range below gets none
                    found = below[1]
            done, value = self.store.mint_between(image, found, below[0], above[0])
            if done:
                return value
        raise TextKeyError(f"backfill {self.store.tracker.name!r}: could not mint handle {text_handle(image)} "
                           f"after {_RETRIES} tries (its neighbours kept changing)")

    def bounds(self, id_range: IdRange) -> tuple[TextValue, TextValue]:
        """``(low, high)``: the range holds ``low < key <= high`` (None: no bound that way)."""
        return self.text_of(id_range.begin_id - 1), self.text_of(id_range.end_id)

    def work_bounds(self, id_range: IdRange, bind: sa.Connection | None = None) -> tuple[str, str] | None:
        """``(begin, end)`` for the work, both inclusive keys, read now (in ``bind``, the work's transaction,
        when given); None when the range holds no row."""
        low, high = self.bounds(id_range)
        if high is None:
            return None
        begin = lowest_key(bind or self.bind, self.table, low=low, high=high)
        return None if begin is None else (begin, high)


def text_keys_of(tracker: Tracker, bind: sa.Engine) -> TextKeys:
    """The text keys of a started backfill, on the table its plan recorded (state/source_record.py)."""
    source = recorded_source(tracker)
    if source is None:
        raise TextKeyError(f"backfill {tracker.name!r} has a text key but no recorded source table")
    return TextKeys(TextKeyStore(tracker), bind, SourceTable(source.table, source.key))


@dataclass
class TextCarver:
    """The tracker's ``Carve`` for a text key: one read a call; the texts are minted by ``mint_planned``
    once the claim commits (a lost race or a preview mints nothing)."""

    keys: TextKeys
    batch_size: int
    planned: dict[int, TextValue] = field(default_factory=dict)

    def __call__(self, cursor: int, min_id: int, count: int) -> list[IdRange]:
        self.planned = {}
        if cursor < min_id or count <= 0:
            return []
        below = self.keys.text_of(cursor)
        if below is None:
            return [IdRange(min_id, cursor)]
        rows = read_text_rows(self.keys.bind, self.keys.table, below=below, batch_size=self.batch_size,
                              count=count)
        ranges, mints = text_ranges(cursor, min_id, rows.read, len(rows.tops), count, self.batch_size)
        self.planned = {image: None if top is None else rows.tops[top] for image, top in mints.items()}
        return ranges

    def mint_planned(self) -> None:
        """Mint the texts of the last carve (call after the claim that used it), and forget those of the
        ranges done for good (``TextKeyStore.prune``)."""
        self.keys.store.mint(self.planned)
        self.planned = {}
        self.keys.store.prune()
