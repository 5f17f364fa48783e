"""UUID keys as integers: how the tracker, the ledger and XCom hold a UUID key exactly, without a new type.

A UUID orders in SQLite, PostgreSQL and MariaDB as its 16 bytes (PostgreSQL ``uuid`` compares bytewise,
``BINARY(16)`` too, and canonical ``CHAR(36)`` text compares like its hex digits), which is the order of
the unsigned 128-bit ``uuid.int``. So a UUID key lives in the tracker as that integer, with the form the
driver returned it in (``uuid.UUID``, lowercase or uppercase text, 16 bytes) in the bits above it:
``image = form << 128 | uuid.int``. Ranges, ``+1``/``-1``, the cursor and bisection midpoints then work
unchanged, every image lies above the signed 64-bit range of integer keys (so a value tells by itself
whether it is a UUID key: ``is_uuid_image``), and ``to_key`` gives back the same Python value as the
driver returned, for the SQL and for the work. Integer keys are left exactly as they were.

A text key (not a UUID) has no integer image of its own: its order is the database's collation, which
Python must never try to reproduce. Its image is ``TEXT << 128 | handle``, a *handle* that the walk hands
out top-down in the database's order (one handle per row read, ``state/text_keys.py``), the handle -> text
map living in the backfill's Redis namespace. Such an image means nothing without that map: ``to_key``
refuses it (``text_handle`` gives the handle to look up).
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from airflow_spreader.errors import SpreaderError

__all__ = ["INT64_MAX", "TEXT_BOTTOM", "TEXT_MIN", "TEXT_TOP", "KeyForm", "UuidKeyError", "counted_ids", "form_of",
           "from_key", "is_text_image", "is_uuid_image", "key_label", "text_handle", "text_image", "to_key"]

INT64_MAX = 2**63 - 1
_LOW = 2**128 - 1


class UuidKeyError(SpreaderError, ValueError):
    """A value that should be a UUID key is not one (or not in the form of the rest of the key)."""


class KeyForm(enum.IntEnum):
    """How the driver returns a UUID key; the bits above the UUID's 128 in its integer image."""

    NATIVE = 1  # uuid.UUID (e.g. a driver that converts PostgreSQL's uuid)
    LOWER = 2  # canonical text, lowercase: 0190c8a4-...; PostgreSQL uuid through psycopg2, CHAR(36), SQLite text
    UPPER = 3  # canonical text, uppercase
    BYTES = 4  # 16 bytes (MariaDB BINARY(16))
    TEXT = 5  # text in the database's collation: the low 128 bits are a handle, not the text (state/text_keys.py)


def text_image(handle: int) -> int:
    """The tracker's integer for the text key of ``handle`` (0 <= handle < 2^128)."""
    if isinstance(handle, bool) or not isinstance(handle, int) or not 0 <= handle <= _LOW:
        raise UuidKeyError(f"a text key's handle must be an integer in 0..2^128-1, got {handle!r}")
    return KeyForm.TEXT << 128 | handle


def is_text_image(value: int) -> bool:
    """True for the image of a text key (a handle, not a value: see ``text_handle``)."""
    return value >> 128 == KeyForm.TEXT


def text_handle(image: int) -> int:
    """The handle of a text key's image (UuidKeyError for any other image)."""
    if not is_text_image(image):
        raise UuidKeyError(f"{image} is not the image of a text key")
    return image & _LOW


#: A text walk starts with its top row at TEXT_TOP and its bottom at TEXT_MIN; TEXT_BOTTOM, one below,
#: stands for "below every key" (no lower bound). Handles go down by one a row: 2^127 rows never run out.
TEXT_TOP, TEXT_MIN, TEXT_BOTTOM = text_image(2**127), text_image(1), text_image(0)


def from_key(value: Any, form: KeyForm | None = None) -> int:
    """The integer image of a UUID key value as the driver returned it. ``form``: the form the rest of the
    key has (the cursor's); a value of another form raises UuidKeyError, since it would order differently."""
    found, number = _parse(value)
    if form is KeyForm.UPPER and found is KeyForm.LOWER and value == str(value).upper():
        found = form  # no letters in it: lowercase and uppercase at once
    if form is not None and found is not form:
        raise UuidKeyError(f"key value {value!r} is a UUID of form {found.name}, the key's others are {form.name}")
    return found << 128 | number


def to_key(image: int) -> Any:
    """The key value for the database and the work: the inverse of ``from_key`` (integers come back as is)."""
    if not is_uuid_image(image):
        return image
    form, number = form_of(image), image & _LOW
    if form is KeyForm.TEXT:
        raise UuidKeyError(f"{image} is a text key's handle: its text is in the backfill's Redis (TextKeyStore)")
    if form is KeyForm.NATIVE:
        return uuid.UUID(int=number)
    if form is KeyForm.BYTES:
        return number.to_bytes(16, "big")
    text = str(uuid.UUID(int=number))
    return text.upper() if form is KeyForm.UPPER else text


def is_uuid_image(value: int) -> bool:
    """True for the image of a UUID key (every one lies above the signed 64-bit range of integer keys)."""
    return value > INT64_MAX


def form_of(image: int) -> KeyForm:
    """The form of a UUID key's image (UuidKeyError for an integer key)."""
    try:
        return KeyForm(image >> 128)
    except ValueError:
        raise UuidKeyError(f"{image} is not the image of a UUID key") from None


def key_label(image: int) -> str:
    """How a key reads in messages and labels: the integer, or the UUID's canonical text."""
    if not is_uuid_image(image):
        return str(image)
    try:
        form_of(image)
    except UuidKeyError:  # a cursor one below the smallest UUID (the walk is over): no UUID to show
        return str(image)
    if is_text_image(image):  # callers that hold the text map show the text instead (TextKeyStore.labels)
        return f"text#{text_handle(image)}"
    return str(uuid.UUID(int=image & _LOW))


def counted_ids(begin_id: int, end_id: int) -> int:
    """How many ids a range counts in the tracker's id counters: its size, 0 for a UUID range (a span of
    UUIDs holds up to 2^128 ids, beyond Redis's signed 64-bit counters; its progress is counted in rows)."""
    return 0 if is_uuid_image(end_id) else end_id - begin_id + 1


def _parse(value: Any) -> tuple[KeyForm, int]:
    if isinstance(value, uuid.UUID):
        return KeyForm.NATIVE, value.int
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) != 16:
            raise UuidKeyError(f"key value {raw!r} has {len(raw)} bytes, not the 16 of a UUID")
        return KeyForm.BYTES, int.from_bytes(raw, "big")
    if isinstance(value, str):
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            parsed = None
        canonical = None if parsed is None else str(parsed)
        if canonical is not None and value == canonical:
            return KeyForm.LOWER, parsed.int  # type: ignore[union-attr]
        if canonical is not None and value == canonical.upper():
            return KeyForm.UPPER, parsed.int  # type: ignore[union-attr]
        raise UuidKeyError(f"key value {value!r} is not a UUID in canonical text (36 characters, one case, "
                           "e.g. 0190c8a4-7e1f-4c7b-9a44-3f2d1e0b5a6c): text keys other than UUIDs are not "
                           "supported")
    raise UuidKeyError(f"key value {value!r} ({type(value).__name__}) is neither an integer nor a UUID")
