"""RFC 6962 Merkle trees: roots, inclusion proofs and their verification."""

from collections.abc import Sequence

from chainlab.ledger.hashing import sha256

# A proof step: (sibling is on the left, sibling hash), ordered from the leaf up to the root.
ProofStep = tuple[bool, bytes]


def _leaf_hash(leaf: bytes) -> bytes:
    return sha256(b"\x00", leaf)


def _node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01", left, right)


def _next_level(level: list[bytes]) -> list[bytes]:
    # Pairing left to right and promoting a trailing odd node gives exactly RFC 6962's split
    # at the largest power of two below n, without recursion.
    paired = [_node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Return the RFC 6962 Merkle tree hash of ``leaves`` (sha256(b"") when empty)."""
    if not leaves:
        return sha256(b"")
    level = [_leaf_hash(leaf) for leaf in leaves]
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[ProofStep]:
    """Return the inclusion proof of ``leaves[index]``, from the leaf up to the root."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} out of range for {len(leaves)} leaves")
    proof: list[ProofStep] = []
    level = [_leaf_hash(leaf) for leaf in leaves]
    while len(level) > 1:
        sibling = index ^ 1
        # A promoted node has no sibling at this level, so it contributes no proof step.
        if sibling < len(level):
            proof.append((sibling < index, level[sibling]))
        level = _next_level(level)
        index //= 2
    return proof


def verify_proof(leaf: bytes, proof: list[ProofStep], root: bytes) -> bool:
    """Return True iff ``proof`` shows that ``leaf`` is included under ``root``."""
    h = _leaf_hash(leaf)
    for sibling_on_left, sibling in proof:
        h = _node_hash(sibling, h) if sibling_on_left else _node_hash(h, sibling)
    return h == root
