import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainlab.ledger.chain import ChainEntry, ChainIndex, UnknownParentError
from chainlab.ledger.hashing import sha256

GENESIS = ChainEntry(block_hash=sha256(b"genesis"), parent_hash=b"", height=0, score=0.0)


def child(parent: ChainEntry, label: str, score: float = 0.0) -> ChainEntry:
    return ChainEntry(sha256(label.encode()), parent.block_hash, parent.height + 1, score)


def hashes(entries: list[ChainEntry]) -> list[bytes]:
    return [e.block_hash for e in entries]


def test_genesis_only() -> None:
    idx = ChainIndex(GENESIS)
    assert idx.tip == GENESIS
    assert len(idx) == 1
    assert GENESIS.block_hash in idx
    assert idx.main_chain() == [GENESIS]
    assert idx.stale_count() == 0
    assert idx.fork_heights() == 0


def test_longest_chain_wins_even_with_lower_score() -> None:
    idx = ChainIndex(GENESIS)
    a1 = child(GENESIS, "a1", score=0.9)
    b1 = child(GENESIS, "b1", score=0.1)
    b2 = child(b1, "b2", score=0.1)
    assert idx.add(a1)
    assert not idx.add(b1)
    assert idx.add(b2)
    assert idx.tip == b2
    assert idx.main_chain() == [GENESIS, b1, b2]


def test_tie_broken_by_higher_score() -> None:
    idx = ChainIndex(GENESIS)
    a1 = child(GENESIS, "a1", score=0.5)
    b1 = child(GENESIS, "b1", score=0.7)
    c1 = child(GENESIS, "c1", score=0.6)
    assert idx.add(a1)
    assert idx.add(b1)
    assert not idx.add(c1)
    assert idx.tip == b1


def test_equal_score_smaller_hash_wins_in_any_order() -> None:
    a1 = child(GENESIS, "a1", score=0.5)
    b1 = child(GENESIS, "b1", score=0.5)
    smaller = min(a1, b1, key=lambda e: e.block_hash)
    for order in ((a1, b1), (b1, a1)):
        idx = ChainIndex(GENESIS)
        for entry in order:
            idx.add(entry)
        assert idx.tip == smaller


def test_adding_known_hash_is_noop() -> None:
    idx = ChainIndex(GENESIS)
    a1 = child(GENESIS, "a1")
    assert idx.add(a1)
    assert not idx.add(a1)
    assert not idx.add(GENESIS)
    assert len(idx) == 2
    assert idx.at_height(1) == [a1]


def test_unknown_parent_raises() -> None:
    idx = ChainIndex(GENESIS)
    orphan = ChainEntry(sha256(b"orphan"), sha256(b"nowhere"), 1, 0.0)
    with pytest.raises(UnknownParentError):
        idx.add(orphan)
    with pytest.raises(KeyError):
        idx.add(orphan)
    assert orphan.block_hash not in idx
    assert len(idx) == 1


@pytest.mark.parametrize("height", [0, 2, 5])
def test_wrong_height_raises(height: int) -> None:
    idx = ChainIndex(GENESIS)
    bad = ChainEntry(sha256(b"bad"), GENESIS.block_hash, height, 0.0)
    with pytest.raises(ValueError):
        idx.add(bad)
    assert bad.block_hash not in idx
    assert idx.at_height(height) == ([GENESIS] if height == 0 else [])


def test_forks_paths_and_counts() -> None:
    #   G - a1 - a2 - a3
    #     \ b1 - b2
    #          \ c2
    idx = ChainIndex(GENESIS)
    a1 = child(GENESIS, "a1")
    a2 = child(a1, "a2")
    a3 = child(a2, "a3")
    b1 = child(GENESIS, "b1")
    b2 = child(b1, "b2")
    c2 = child(b1, "c2")
    for e in (a1, b1, b2, a2, c2, a3):
        idx.add(e)
    assert len(idx) == 7
    assert idx.tip == a3
    assert idx.main_chain() == [GENESIS, a1, a2, a3]
    assert idx.path_to(c2.block_hash) == [GENESIS, b1, c2]
    assert idx.path_to(GENESIS.block_hash) == [GENESIS]
    assert idx.at_height(1) == [a1, b1]
    assert idx.at_height(2) == [b2, a2, c2]
    assert idx.at_height(3) == [a3]
    assert idx.at_height(4) == []
    assert idx.stale_count() == 3
    assert idx.fork_heights() == 2
    assert idx.get(b2.block_hash) == b2
    assert idx.get(sha256(b"nope")) is None
    with pytest.raises(KeyError):
        idx.path_to(sha256(b"nope"))


def test_is_ancestor() -> None:
    idx = ChainIndex(GENESIS)
    a1 = child(GENESIS, "a1")
    a2 = child(a1, "a2")
    b1 = child(GENESIS, "b1")
    for e in (a1, a2, b1):
        idx.add(e)
    assert idx.is_ancestor(GENESIS.block_hash, a2.block_hash)
    assert idx.is_ancestor(a1.block_hash, a2.block_hash)
    assert idx.is_ancestor(a2.block_hash, a2.block_hash)
    assert not idx.is_ancestor(a2.block_hash, a1.block_hash)
    assert not idx.is_ancestor(b1.block_hash, a2.block_hash)
    assert not idx.is_ancestor(sha256(b"nope"), a2.block_hash)
    assert not idx.is_ancestor(a1.block_hash, sha256(b"nope"))


# Each step picks an existing block (by position) as parent and a score from a small set, so ties happen.
steps = st.lists(st.tuples(st.integers(min_value=0), st.sampled_from([0.0, 0.5, 1.0])), max_size=60)


@given(steps)
def test_random_trees_match_brute_force(plan: list[tuple[int, float]]) -> None:
    idx = ChainIndex(GENESIS)
    added = [GENESIS]
    for n, (pick, score) in enumerate(plan):
        parent = added[pick % len(added)]
        entry = ChainEntry(sha256(b"blk", n.to_bytes(4, "big")), parent.block_hash, parent.height + 1, score)
        old_tip = idx.tip
        changed = idx.add(entry)
        added.append(entry)
        assert changed == (idx.tip != old_tip)

    # Brute force: best (height, score), the smaller hash among equals.
    best = min(added, key=lambda e: (-e.height, -e.score, e.block_hash))
    assert idx.tip == best
    main = idx.main_chain()
    assert [e.height for e in main] == list(range(best.height + 1))
    assert all(idx.is_ancestor(e.block_hash, best.block_hash) for e in main)
    assert idx.stale_count() == len(added) - len(main)
    heights = [e.height for e in added]
    assert idx.fork_heights() == sum(1 for h in set(heights) if heights.count(h) > 1)
    for h in set(heights):
        assert idx.at_height(h) == [e for e in added if e.height == h]
