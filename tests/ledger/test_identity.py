import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainlab.ledger.identity import Identity, node_id_of, verify


@pytest.fixture(scope="module")
def alice() -> Identity:
    return Identity.from_seed(b"alice")


def test_sign_verify_round_trip(alice: Identity) -> None:
    sig = alice.sign(b"hello")
    assert len(sig) == 64
    assert len(alice.public_key) == 32
    assert verify(alice.public_key, sig, b"hello")


def test_generate_gives_distinct_working_keys() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert a.public_key != b.public_key
    assert verify(a.public_key, a.sign(b"m"), b"m")


@pytest.mark.parametrize("which", ["signature", "message"])
def test_verify_rejects_flipped_bit(alice: Identity, which: str) -> None:
    msg = b"pay bob 10"
    sig = alice.sign(msg)
    for i in range(0, 8 * 64, 37):
        if which == "signature":
            bad = bytearray(sig)
            bad[i // 8] ^= 1 << (i % 8)
            assert not verify(alice.public_key, bytes(bad), msg)
        else:
            bad = bytearray(msg)
            bad[(i // 8) % len(msg)] ^= 1 << (i % 8)
            assert not verify(alice.public_key, sig, bytes(bad))


def test_verify_rejects_wrong_key(alice: Identity) -> None:
    bob = Identity.from_seed(b"bob")
    assert not verify(bob.public_key, alice.sign(b"m"), b"m")


@pytest.mark.parametrize("key_len", [0, 31, 33, 64])
def test_verify_rejects_malformed_key_length(alice: Identity, key_len: int) -> None:
    key = (alice.public_key * 2)[:key_len]
    assert not verify(key, alice.sign(b"m"), b"m")


@pytest.mark.parametrize("sig_len", [0, 1, 63, 65, 128])
def test_verify_rejects_malformed_signature_length(alice: Identity, sig_len: int) -> None:
    sig = (alice.sign(b"m") * 2)[:sig_len]
    assert not verify(alice.public_key, sig, b"m")


@given(st.binary(max_size=40), st.binary(max_size=80), st.binary(max_size=16))
def test_verify_never_raises(key: bytes, sig: bytes, msg: bytes) -> None:
    assert verify(key, sig, msg) in (True, False)


def test_node_id_is_sha256_of_public_key(alice: Identity) -> None:
    assert alice.node_id == hashlib.sha256(alice.public_key).digest()
    assert node_id_of(alice.public_key) == alice.node_id


def test_from_seed_is_deterministic() -> None:
    a1, a2, b = Identity.from_seed(b"x"), Identity.from_seed(b"x"), Identity.from_seed(b"y")
    assert a1.public_key == a2.public_key
    assert a1.sign(b"m") == a2.sign(b"m")
    assert a1.public_key != b.public_key
    assert a1.private_bytes() == hashlib.sha256(b"chainlab-identity" + b"x").digest()


def test_private_bytes_round_trip() -> None:
    ident = Identity.generate()
    raw = ident.private_bytes()
    assert len(raw) == 32
    restored = Identity.from_private_bytes(raw)
    assert restored.public_key == ident.public_key
    assert restored.node_id == ident.node_id


def test_repr_hides_private_key(alice: Identity) -> None:
    assert alice.private_bytes().hex() not in repr(alice)
