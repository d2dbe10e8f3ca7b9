"""Block stores: what a node asked to persist, in memory or in SQLite, behind one interface.

The contract (tests/ledger/test_store.py runs one suite against every implementation):

- **Records.** A record is (kind, key, payload): the protocol names the kind ("keyblock", "model", ...), the key
  is the object's hash, the payload its bytes. The store never looks inside a payload.
- **Idempotence.** (kind, key) is written once: the first payload wins, a repeated put returns False and changes
  nothing (a node may ask to persist the same block twice: a gossip copy, then a catch-up copy).
- **Ordering.** records() yields every record in the order it was first written, across kinds, so a node restored
  from it sees its history in the order it lived it.
- **Durability.** put returns once the record survives a crash of the process (SQLite: a committed transaction in
  WAL mode); a store reopened after SIGKILL holds exactly the records whose put returned.
- **Ownership.** One store belongs to one node of one network, named by its owner tag (e.g. the node ID and the
  genesis hash); opening a store with another owner raises ValueError, so a node is never restored from another's
  state. One writer: the node's driver, which writes a step's records before acting on its other effects.
"""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from chainlab.ledger.hashing import short

STATE_FILE = "state.sqlite"
"""The SQLite file a node keeps in its state directory (`--state DIR`)."""


@dataclass(frozen=True)
class StoredRecord:
    """One record as written: the protocol's kind, the object's key (hash) and its bytes."""

    kind: str
    key: bytes
    payload: bytes


class BlockStore(Protocol):
    """A node's durable records; see the module docstring for ordering, idempotence and ownership."""

    @property
    def owner(self) -> bytes:
        """The owner tag the store was created with."""
        ...

    def put(self, kind: str, key: bytes, payload: bytes) -> bool:
        """Write a record; True iff (kind, key) was new (a repeat changes nothing)."""
        ...

    def get(self, kind: str, key: bytes) -> bytes | None:
        """The payload stored under (kind, key), or None."""
        ...

    def records(self) -> Iterator[StoredRecord]:
        """Every record, in the order each was first written."""
        ...

    def __len__(self) -> int:
        """How many records the store holds."""
        ...

    def close(self) -> None:
        """Release the store; further use is an error."""
        ...


class _Closing:
    """`with store:` closes the store on the way out."""

    def close(self) -> None:
        """Release what the store holds."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class MemoryBlockStore(_Closing):
    """A BlockStore in a dict: what the simulator keeps per node, and nodes started without --state."""

    def __init__(self, owner: bytes) -> None:
        self._owner = owner
        self._records: dict[tuple[str, bytes], StoredRecord] = {}  # dicts keep insertion order
        self._closed = False

    @property
    def owner(self) -> bytes:
        """The owner tag the store was created with."""
        return self._owner

    def check_owner(self, owner: bytes) -> None:
        """Raise ValueError unless owner is this store's: the same check reopening a SQLite store makes."""
        _check_owner(self._owner, owner)

    def put(self, kind: str, key: bytes, payload: bytes) -> bool:
        """Write a record; True iff (kind, key) was new."""
        self._open()
        if (kind, key) in self._records:
            return False
        self._records[(kind, key)] = StoredRecord(kind, bytes(key), bytes(payload))
        return True

    def get(self, kind: str, key: bytes) -> bytes | None:
        """The payload stored under (kind, key), or None."""
        self._open()
        record = self._records.get((kind, key))
        return None if record is None else record.payload

    def records(self) -> Iterator[StoredRecord]:
        """Every record, in first-written order (a snapshot: puts while iterating are not seen)."""
        self._open()
        return iter(list(self._records.values()))

    def __len__(self) -> int:
        return len(self._records)

    def close(self) -> None:
        """Mark closed; the records are dropped."""
        self._closed = True
        self._records.clear()

    def _open(self) -> None:
        if self._closed:
            raise ValueError("the store is closed")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    key     BLOB NOT NULL,
    payload BLOB NOT NULL,
    UNIQUE (kind, key)
);
"""


class SqliteBlockStore(_Closing):
    """A BlockStore in one SQLite file (WAL, one transaction per put): it survives SIGKILL of its process."""

    def __init__(self, path: str | pathlib.Path, owner: bytes) -> None:
        # Autocommit mode, so that each put controls its own transaction explicitly.
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            if str(path) != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL: a committed put survives the process being killed (the WAL is in the OS's hands); only a
                # power loss may drop the last few, and the node then catches up on them from its peers.
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            with self._transaction():
                row = self._conn.execute("SELECT value FROM meta WHERE name = 'owner'").fetchone()
                if row is None:
                    self._conn.execute("INSERT INTO meta (name, value) VALUES ('owner', ?)", (owner,))
                    row = (owner,)
            _check_owner(bytes(row[0]), owner)
            self._owner = owner
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def in_directory(cls, directory: str | pathlib.Path, owner: bytes) -> SqliteBlockStore:
        """The store of a node's state directory (created if missing): DIR/state.sqlite."""
        folder = pathlib.Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder / STATE_FILE, owner)

    @property
    def owner(self) -> bytes:
        """The owner tag the store was created with."""
        return self._owner

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so the existence check and insert cannot interleave with another
        # writer on the same file.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def put(self, kind: str, key: bytes, payload: bytes) -> bool:
        """Write a record in its own transaction; True iff (kind, key) was new."""
        with self._transaction():
            cursor = self._conn.execute(
                "INSERT OR IGNORE INTO records (kind, key, payload) VALUES (?, ?, ?)",
                (kind, bytes(key), bytes(payload)),
            )
            return cursor.rowcount == 1

    def get(self, kind: str, key: bytes) -> bytes | None:
        """The payload stored under (kind, key), or None."""
        row = self._conn.execute(
            "SELECT payload FROM records WHERE kind = ? AND key = ?", (kind, bytes(key))
        ).fetchone()
        return None if row is None else bytes(row[0])

    def records(self) -> Iterator[StoredRecord]:
        """Every record, in first-written order."""
        rows = self._conn.execute("SELECT kind, key, payload FROM records ORDER BY seq").fetchall()
        return iter([StoredRecord(str(kind), bytes(key), bytes(payload)) for kind, key, payload in rows])

    def __len__(self) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM records").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()


def _check_owner(stored: bytes, owner: bytes) -> None:
    if stored != owner:
        raise ValueError(f"the store belongs to {short(stored)}, not {short(owner)}: refusing to restore from it")
