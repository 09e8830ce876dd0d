"""The state every emulator keeps besides its vendor's records: the clock it stamps with,
the tables it orders, the faults and rate limits switched through its control API."""

from __future__ import annotations

import datetime as dt
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload


class Clock:
    """Server clock: real time plus an offset, strictly increasing by at least 1 µs per call.

    Vendors format stamps at their own precision (Ruddr ms, Close µs, ParsaLink s), so at a
    coarse precision several writes can share one stamp — as they do on the real APIs.
    """

    def __init__(self) -> None:
        self._offset = dt.timedelta(0)
        self._last = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            candidate = dt.datetime.now(dt.UTC) + self._offset
            if candidate <= self._last:
                candidate = self._last + dt.timedelta(microseconds=1)
            self._last = candidate
            return candidate

    def peek(self) -> dt.datetime:
        """The current time without consuming a tick (for reads and rate limits)."""
        return max(dt.datetime.now(dt.UTC) + self._offset, self._last)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += dt.timedelta(seconds=seconds)


@dataclass(frozen=True)
class Ordered:
    """A collection in listing order, and each record id's index in it."""

    rows: Sequence[dict[str, Any]]
    position: Mapping[str, int]


class Reversed(Sequence[dict[str, Any]]):
    """A list read from its end: newest first over rows kept oldest first, so a record
    created after the rest is one append, not a shift of every position."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        n = len(self._rows)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._rows[n - stop : n - start][::-1] if start < stop else []
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        return self._rows[n - 1 - index]


class ReversedPositions(Mapping[str, int]):
    """Each id's index in a :class:`Reversed` view, from its index in the kept list."""

    def __init__(self, rows: list[dict[str, Any]], position: dict[str, int]) -> None:
        self._rows, self._position = rows, position

    def __getitem__(self, key: str) -> int:
        return len(self._rows) - 1 - self._position[key]

    def __contains__(self, key: object) -> bool:
        return key in self._position

    def __iter__(self) -> Iterator[str]:
        return iter(self._position)

    def __len__(self) -> int:
        return len(self._position)


class Table(dict[str, dict[str, Any]]):
    """A collection (id -> record) that counts the changes to its set of records, so a listing
    order sorted once stays valid until a record is added or deleted — however it is (tests
    delete straight from the dict, behind the API's back). New ids are noted in ``added``
    and every other change in ``reshaped``: a listing order extends itself with records
    created after the rest instead of sorting everything again (a million-deal scan runs
    while deals are being created)."""

    version = 0
    reshaped = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.added: list[str] = []

    def touch(self) -> None:
        self.version += 1
        self.reshaped += 1

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        if key in self:
            self.touch()  # a record replaced: the order's row must be the new one
        else:
            self.version += 1
            self.added.append(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.touch()
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.touch()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, dict[str, Any]]:
        self.touch()
        return super().popitem()

    def clear(self) -> None:
        self.touch()
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.touch()
        super().update(*args, **kwargs)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.touch()
        return super().setdefault(key, default)


class Order:
    """A table's rows oldest first by a key, each id's index, and the table's state then."""

    def __init__(self, table: Table, key: Callable[[dict[str, Any]], Any]) -> None:
        self.table = table
        self.sort(key)

    def sort(self, key: Callable[[dict[str, Any]], Any]) -> None:
        table = self.table
        self.rows = sorted(table.values(), key=key)
        self.position = {row["id"]: index for index, row in enumerate(self.rows)}
        self.version, self.reshaped, self.added = table.version, table.reshaped, len(table.added)

    def extend(self, key: Callable[[dict[str, Any]], Any]) -> None:
        """Append the records added since, when they all sort after the rest; else sort."""
        new = sorted((self.table[k] for k in self.table.added[self.added :]), key=key)
        if new and self.rows and key(new[0]) <= key(self.rows[-1]):
            self.sort(key)
            return
        for row in new:
            self.position[row["id"]] = len(self.rows)
            self.rows.append(row)
        self.version, self.added = self.table.version, len(self.table.added)


def tables(*names: str) -> dict[str, Table]:
    """Empty collections, one per name (an emulator's ``reset_state``)."""
    return {name: Table() for name in names}


#: Seeded records are dated before this instant, so the same seed gives the same ids and stamps.
SEED_EPOCH = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def seed_epoch(now: dt.datetime) -> dt.datetime:
    """The instant seeded history ends: fixed for determinism, never in the server's future."""
    return min(SEED_EPOCH, now)


def add(table: dict[str, dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    """Store ``record`` under its ``id`` and return it."""
    table[record["id"]] = record
    return record


def add_random(
    table: dict[str, dict[str, Any]],
    count: int,
    name: str,
    make: Callable[[random.Random], dict[str, Any]],
) -> None:
    """Add ``count`` records from ``make``, drawn from a generator named after ``name`` and the
    table's size: the same seed and size give the same records (``POST /_emulator/seed``)."""
    rng = random.Random(f"{name}-{len(table)}")
    for _ in range(count):
        add(table, make(rng))


def update_known(
    table: dict[str, dict[str, Any]], record_id: str, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """Set fields of a record behind the API's back (``POST /_emulator/set``). A field the
    record does not have is a ``KeyError`` (answered 404), so a misspelt name fails loudly."""
    record = table[record_id]
    unknown = set(fields) - set(record)
    if unknown:
        raise KeyError(f"field {sorted(unknown)[0]}")
    record.update(fields)
    return record


def json_number(value: Any) -> Any:
    """A whole float as the integer a JavaScript or Python backend writes (``50000``, not
    ``50000.0``); anything else as it is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def is_number(value: Any) -> bool:
    """A JSON number: an int or a float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class Faults:
    error_rate: float = 0.0
    statuses: list[int] = field(default_factory=lambda: [500, 502, 503])
    latency_ms: float = 0.0
    timeout_rate: float = 0.0
    fail_after_commit_rate: float = 0.0
    hang_seconds: float = 30.0


@dataclass
class RateLimitState:
    """A token bucket per key. ``rate`` tokens/s, ``burst`` capacity."""

    enabled: bool
    rate: float
    burst: float
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, t)

    def take(self, key: str) -> tuple[bool, float, float]:
        """Take one token. Returns (allowed, tokens left, seconds until one token is back)."""
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self.buckets[key] = (tokens - 1, now)
            return True, tokens - 1, 0.0
        self.buckets[key] = (tokens, now)
        return False, tokens, (1 - tokens) / self.rate


def is_date(value: Any) -> bool:
    """A ``YYYY-MM-DD`` string naming a real day."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True
