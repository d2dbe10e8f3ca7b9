"""SQLite persistence for blocks of every kind, with a ChainIndex over the Key Blocks."""

import pathlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Self

from chainlab.ledger.chain import ChainEntry, ChainIndex
from chainlab.ledger.hashing import short

KEY_KIND = "key"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    hash    BLOB PRIMARY KEY,
    kind    TEXT NOT NULL,
    height  INTEGER NOT NULL,
    parent  BLOB NOT NULL,
    score   REAL NOT NULL,
    payload BLOB NOT NULL,
    seq     INTEGER NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS blocks_kind_height ON blocks (kind, height, seq);
"""

_INSERT = """
INSERT INTO blocks (hash, kind, height, parent, score, payload, seq)
VALUES (?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM blocks))
"""


class BlockStore:
    """A SQLite block store that persists every block and indexes the Key Blocks."""

    def __init__(self, path: str | pathlib.Path, genesis: ChainEntry, genesis_payload: bytes) -> None:
        # Autocommit mode, so that each put controls its own transaction explicitly.
        self._conn = sqlite3.connect(path, isolation_level=None)
        try:
            if str(path) != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
            self._index = ChainIndex(genesis)
            self._open(genesis, genesis_payload)
        except BaseException:
            self._conn.close()
            raise

    def _open(self, genesis: ChainEntry, genesis_payload: bytes) -> None:
        with self._transaction():
            first = self._conn.execute("SELECT hash FROM blocks ORDER BY seq LIMIT 1").fetchone()
            if first is None:
                self._insert(KEY_KIND, genesis, genesis_payload)
                return
        if first[0] != genesis.block_hash:
            raise ValueError(f"store was created with genesis {short(first[0])}, not {short(genesis.block_hash)}")
        # Replaying in insertion order makes the rebuilt index pick the same tip on ties.
        rows = self._conn.execute(
            "SELECT hash, parent, height, score FROM blocks WHERE kind = ? AND hash != ? ORDER BY seq",
            (KEY_KIND, genesis.block_hash),
        )
        for block_hash, parent_hash, height, score in rows:
            self._index.add(ChainEntry(block_hash, parent_hash, height, score))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so the existence check and insert cannot interleave
        # with another writer on the same file.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _insert(self, kind: str, entry: ChainEntry, payload: bytes) -> None:
        self._conn.execute(_INSERT, (entry.block_hash, kind, entry.height, entry.parent_hash, entry.score, payload))

    @property
    def index(self) -> ChainIndex:
        """The fork-keeping index over the stored Key Blocks."""
        return self._index

    def put(
        self,
        kind: str,
        block_hash: bytes,
        payload: bytes,
        *,
        height: int,
        parent_hash: bytes = b"",
        score: float = 0.0,
    ) -> bool:
        """Store a block; return True iff it was new. Key Blocks also join the index."""
        entry = ChainEntry(block_hash, parent_hash, height, score)
        with self._transaction():
            if self._conn.execute("SELECT 1 FROM blocks WHERE hash = ?", (block_hash,)).fetchone():
                return False
            if kind == KEY_KIND:
                # Checked before writing so that a rejected Key Block leaves no row behind.
                self._index.validate(entry)
            self._insert(kind, entry, payload)
        # Only index once the row is durable, so the index never gets ahead of the database.
        if kind == KEY_KIND:
            self._index.add(entry)
        return True

    def get(self, block_hash: bytes) -> bytes | None:
        """Return the payload of ``block_hash``, or None if not stored."""
        row = self._conn.execute("SELECT payload FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        return None if row is None else bytes(row[0])

    def kind_of(self, block_hash: bytes) -> str | None:
        """Return the kind of ``block_hash``, or None if not stored."""
        row = self._conn.execute("SELECT kind FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        return None if row is None else str(row[0])

    def blocks_at(self, kind: str, height: int) -> list[bytes]:
        """Return the hashes of every ``kind`` block at ``height``, in insertion order."""
        rows = self._conn.execute("SELECT hash FROM blocks WHERE kind = ? AND height = ? ORDER BY seq", (kind, height))
        return [bytes(row[0]) for row in rows]

    def close(self) -> None:
        """Close the underlying database connection."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
