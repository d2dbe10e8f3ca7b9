import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainlab.ledger.merkle import merkle_proof, merkle_root, verify_proof


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(x: bytes) -> bytes:
    return h(b"\x00" + x)


def node(a: bytes, b: bytes) -> bytes:
    return h(b"\x01" + a + b)


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """The recursive definition from RFC 6962 section 2.1, as an independent reference."""
    if not leaves:
        return h(b"")
    if len(leaves) == 1:
        return leaf(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node(rfc6962_root(leaves[:k]), rfc6962_root(leaves[k:]))


def test_empty_root() -> None:
    assert merkle_root([]) == h(b"")


def test_one_leaf() -> None:
    assert merkle_root([b"a"]) == leaf(b"a")
    assert merkle_proof([b"a"], 0) == []
    assert verify_proof(b"a", [], leaf(b"a"))


def test_two_leaves() -> None:
    assert merkle_root([b"a", b"b"]) == node(leaf(b"a"), leaf(b"b"))
    assert merkle_proof([b"a", b"b"], 0) == [(False, leaf(b"b"))]
    assert merkle_proof([b"a", b"b"], 1) == [(True, leaf(b"a"))]


def test_three_leaves_promotes_the_odd_one() -> None:
    leaves = [b"a", b"b", b"c"]
    assert merkle_root(leaves) == node(node(leaf(b"a"), leaf(b"b")), leaf(b"c"))
    assert merkle_proof(leaves, 2) == [(True, node(leaf(b"a"), leaf(b"b")))]
    assert merkle_proof(leaves, 0) == [(False, leaf(b"b")), (False, leaf(b"c"))]


def test_leaf_and_node_domains_are_separated() -> None:
    # Without the 0x00/0x01 prefixes an inner node could pass as a leaf.
    inner = leaf(b"a") + leaf(b"b")
    assert merkle_root([inner]) != merkle_root([b"a", b"b"])


@given(st.lists(st.binary(max_size=8), max_size=40))
def test_root_matches_rfc6962_recursion(leaves: list[bytes]) -> None:
    assert merkle_root(leaves) == rfc6962_root(leaves)


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40))
def test_proofs_verify_for_every_index(leaves: list[bytes]) -> None:
    root = merkle_root(leaves)
    for i, x in enumerate(leaves):
        assert verify_proof(x, merkle_proof(leaves, i), root)


@given(st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=40, unique=True), st.data())
def test_tampered_leaf_fails(leaves: list[bytes], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle_proof(leaves, i)
    root = merkle_root(leaves)
    tampered = bytes([leaves[i][0] ^ 1]) + leaves[i][1:]
    assert not verify_proof(tampered, proof, root)


def test_tampered_proof_fails() -> None:
    leaves = [bytes([i]) for i in range(7)]
    root = merkle_root(leaves)
    proof = merkle_proof(leaves, 3)
    flipped_side = [(not left, sib) for left, sib in proof]
    assert not verify_proof(leaves[3], flipped_side, root)
    assert not verify_proof(leaves[3], proof[:-1], root)


@pytest.mark.parametrize("index", [-1, 3])
def test_proof_index_out_of_range(index: int) -> None:
    with pytest.raises(IndexError):
        merkle_proof([b"a", b"b", b"c"], index)
