import pathlib

import pytest

from chainlab.ledger.chain import ChainEntry, UnknownParentError
from chainlab.ledger.hashing import sha256
from chainlab.ledger.store import BlockStore

GENESIS = ChainEntry(block_hash=sha256(b"genesis"), parent_hash=b"", height=0, score=0.0)
GENESIS_PAYLOAD = b"genesis-payload"


def h(label: str) -> bytes:
    return sha256(label.encode())


def put_key(store: BlockStore, label: str, parent: str | None, height: int, score: float = 0.0) -> bool:
    parent_hash = GENESIS.block_hash if parent is None else h(parent)
    return store.put("key", h(label), label.encode(), height=height, parent_hash=parent_hash, score=score)


def test_genesis_is_stored() -> None:
    with BlockStore(":memory:", GENESIS, GENESIS_PAYLOAD) as store:
        assert store.get(GENESIS.block_hash) == GENESIS_PAYLOAD
        assert store.kind_of(GENESIS.block_hash) == "key"
        assert store.index.tip == GENESIS
        assert store.blocks_at("key", 0) == [GENESIS.block_hash]


def test_put_get_and_idempotency() -> None:
    with BlockStore(":memory:", GENESIS, GENESIS_PAYLOAD) as store:
        assert store.put("micro", h("m1"), b"payload-1", height=3)
        assert store.get(h("m1")) == b"payload-1"
        assert store.kind_of(h("m1")) == "micro"
        assert not store.put("micro", h("m1"), b"other", height=4)
        assert store.get(h("m1")) == b"payload-1"
        assert store.blocks_at("micro", 3) == [h("m1")]
        assert store.blocks_at("micro", 4) == []
        assert store.get(h("missing")) is None
        assert store.kind_of(h("missing")) is None

        assert put_key(store, "k1", None, 1)
        assert not put_key(store, "k1", None, 1)
        # A repeated hash is ignored whatever else the call claims about it.
        assert not store.put("key", h("k1"), b"x", height=7, parent_hash=h("nowhere"))
        assert not store.put("key", GENESIS.block_hash, b"x", height=0)
        assert len(store.index) == 2
        assert store.index.tip.block_hash == h("k1")


def test_non_key_blocks_stay_out_of_the_index() -> None:
    with BlockStore(":memory:", GENESIS, GENESIS_PAYLOAD) as store:
        assert store.put("model", h("m"), b"weights", height=1, parent_hash=h("nowhere"), score=0.9)
        assert len(store.index) == 1
        assert h("m") not in store.index


def test_unknown_parent_leaves_nothing_stored() -> None:
    with BlockStore(":memory:", GENESIS, GENESIS_PAYLOAD) as store:
        with pytest.raises(UnknownParentError):
            store.put("key", h("orphan"), b"o", height=1, parent_hash=h("nowhere"))
        assert store.get(h("orphan")) is None
        assert store.blocks_at("key", 1) == []
        assert h("orphan") not in store.index
        # The store is still usable after the rollback.
        assert put_key(store, "k1", None, 1)


def test_wrong_height_leaves_nothing_stored() -> None:
    with BlockStore(":memory:", GENESIS, GENESIS_PAYLOAD) as store:
        with pytest.raises(ValueError):
            put_key(store, "k1", None, 2)
        assert store.get(h("k1")) is None


def build_forks(store: BlockStore) -> None:
    #   G - a1 - a2
    #     \ b1 - b2   (b2 ties a2 on height and score, so a2, seen first, must stay tip)
    #          \ c2 (lower score)
    put_key(store, "a1", None, 1, 0.2)
    put_key(store, "b1", None, 1, 0.3)
    put_key(store, "a2", "a1", 2, 0.5)
    put_key(store, "b2", "b1", 2, 0.5)
    put_key(store, "c2", "b1", 2, 0.1)
    store.put("micro", h("m"), b"micro", height=2, parent_hash=h("a2"))


def test_reopen_rebuilds_same_tip_and_forks(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "chain.db"
    with BlockStore(path, GENESIS, GENESIS_PAYLOAD) as store:
        build_forks(store)
        tip = store.index.tip
        main = store.index.main_chain()
        at2 = store.index.at_height(2)
        assert tip.block_hash == h("a2")

    with BlockStore(str(path), GENESIS, GENESIS_PAYLOAD) as reopened:
        idx = reopened.index
        assert idx.tip == tip
        assert idx.main_chain() == main
        assert idx.at_height(2) == at2
        assert len(idx) == 6
        assert idx.stale_count() == 3
        assert idx.fork_heights() == 2
        assert reopened.get(h("m")) == b"micro"
        assert reopened.get(GENESIS.block_hash) == GENESIS_PAYLOAD
        assert reopened.blocks_at("key", 2) == [h("a2"), h("b2"), h("c2")]
        # New blocks keep extending the rebuilt index.
        assert put_key(reopened, "b3", "b2", 3)
        assert reopened.index.tip.block_hash == h("b3")


def test_reopen_with_other_genesis_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "chain.db"
    BlockStore(path, GENESIS, GENESIS_PAYLOAD).close()
    other = ChainEntry(sha256(b"other"), b"", 0, 0.0)
    with pytest.raises(ValueError):
        BlockStore(path, other, b"")


def test_file_store_uses_wal(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "chain.db"
    with BlockStore(path, GENESIS, GENESIS_PAYLOAD):
        pass
    assert path.read_bytes()[18:20] == b"\x02\x02"  # file-format bytes 2/2 mean WAL
