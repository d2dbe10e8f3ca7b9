import hashlib

from hypothesis import given
from hypothesis import strategies as st

from chainlab.ledger.hashing import sha256, short


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_sha256_hashes_the_concatenation(parts: list[bytes]) -> None:
    assert sha256(*parts) == hashlib.sha256(b"".join(parts)).digest()


def test_sha256_of_nothing_is_empty_digest() -> None:
    assert sha256() == hashlib.sha256(b"").digest()


def test_short_is_first_eight_hex_chars() -> None:
    digest = bytes(range(32))
    assert short(digest) == "00010203"
