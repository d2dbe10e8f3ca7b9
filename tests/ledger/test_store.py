"""One contract suite for every BlockStore: in memory and SQLite (in a file, so reopening is real)."""

from __future__ import annotations

import multiprocessing
import os
import pathlib
import signal
import sqlite3
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.ledger.hashing import sha256
from chainlab.ledger.store import STATE_FILE, BlockStore, MemoryBlockStore, SqliteBlockStore, StoredRecord

OWNER = sha256(b"node") + sha256(b"genesis")
Opener = Callable[[bytes], BlockStore]


def h(label: str) -> bytes:
    return sha256(label.encode())


@pytest.fixture(params=["memory", "sqlite"])
def opener(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Opener]:
    """Opens the store under test with an owner tag; for SQLite, the same file each time (a reopen)."""
    memory: dict[bytes, MemoryBlockStore] = {}

    def open_memory(owner: bytes) -> BlockStore:
        # Reopening an in-memory store hands back the same object: the simulator keeps it across a restart.
        store = memory.setdefault(OWNER, MemoryBlockStore(OWNER))
        store.check_owner(owner)
        return store

    def open_sqlite(owner: bytes) -> BlockStore:
        return SqliteBlockStore.in_directory(tmp_path / "state", owner)

    yield open_memory if request.param == "memory" else open_sqlite


def test_put_get_and_idempotence(opener: Opener) -> None:
    store = opener(OWNER)
    assert store.owner == OWNER
    assert store.put("keyblock", h("k1"), b"one")
    assert store.get("keyblock", h("k1")) == b"one"
    # The first payload wins; a repeat says so and changes nothing.
    assert not store.put("keyblock", h("k1"), b"other")
    assert store.get("keyblock", h("k1")) == b"one"
    assert len(store) == 1
    # The same key under another kind is another record.
    assert store.put("model", h("k1"), b"weights")
    assert store.get("model", h("k1")) == b"weights"
    assert store.get("keyblock", h("missing")) is None
    assert store.get("nothing", h("k1")) is None
    assert len(store) == 2


def test_records_come_back_in_first_written_order(opener: Opener) -> None:
    store = opener(OWNER)
    written = [("task", "t"), ("miniblock", "m2"), ("miniblock", "m1"), ("keyblock", "k"), ("model", "w")]
    for kind, label in written:
        store.put(kind, h(label), label.encode())
    store.put("miniblock", h("m2"), b"again")  # a repeat keeps its first place
    assert [(r.kind, r.key) for r in store.records()] == [(k, h(label)) for k, label in written]
    assert next(r for r in store.records() if r.key == h("m2")) == StoredRecord("miniblock", h("m2"), b"m2")


def test_a_reopened_store_holds_what_was_written(opener: Opener) -> None:
    store = opener(OWNER)
    store.put("keyblock", h("k1"), b"one")
    store.put("model", h("w"), b"\x00" * 100_000)
    before = list(store.records())
    if isinstance(store, SqliteBlockStore):
        store.close()
    reopened = opener(OWNER)
    assert list(reopened.records()) == before
    assert not reopened.put("keyblock", h("k1"), b"one")
    assert reopened.put("keyblock", h("k2"), b"two")
    assert [r.key for r in reopened.records()][-1] == h("k2")


def test_another_owner_is_refused(opener: Opener) -> None:
    store = opener(OWNER)
    store.put("keyblock", h("k1"), b"one")
    if isinstance(store, SqliteBlockStore):
        store.close()
    with pytest.raises(ValueError, match="belongs to"):
        opener(sha256(b"someone else"))


def test_a_closed_store_refuses_use(opener: Opener) -> None:
    store = opener(OWNER)
    store.close()
    with pytest.raises((ValueError, sqlite3.ProgrammingError)):
        store.put("keyblock", h("k1"), b"one")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.binary(max_size=4), st.binary(max_size=8)), max_size=30))
def test_both_stores_agree_on_any_sequence_of_puts(puts: list[tuple[str, bytes, bytes]]) -> None:
    memory = MemoryBlockStore(OWNER)
    sqlite = SqliteBlockStore(":memory:", OWNER)
    try:
        for kind, key, payload in puts:
            assert memory.put(kind, key, payload) == sqlite.put(kind, key, payload)
        assert list(memory.records()) == list(sqlite.records())
        assert len(memory) == len(sqlite)
        for kind, key, _ in puts:
            assert memory.get(kind, key) == sqlite.get(kind, key)
    finally:
        sqlite.close()


def _write_then_die(directory: str, count: int) -> None:
    store = SqliteBlockStore.in_directory(directory, OWNER)
    for i in range(count):
        store.put("keyblock", h(str(i)), str(i).encode())
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush: what a killed node leaves behind


def test_sqlite_records_survive_sigkill(tmp_path: pathlib.Path) -> None:
    process = multiprocessing.get_context("spawn").Process(target=_write_then_die, args=(str(tmp_path), 50))
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL
    assert (tmp_path / STATE_FILE).exists()
    with SqliteBlockStore.in_directory(tmp_path, OWNER) as store:
        assert [r.payload for r in store.records()] == [str(i).encode() for i in range(50)]
