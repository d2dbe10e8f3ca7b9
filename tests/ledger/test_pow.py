import hashlib

import pytest

from chainlab.ledger.pow import DEFAULT_TARGET, meets_target, parse_target, search_nonce, success_probability


def suffix(nonce: int) -> bytes:
    return nonce.to_bytes(8, "big")


def test_default_target() -> None:
    assert DEFAULT_TARGET == 2**244 - 1


def test_meets_target_boundaries() -> None:
    target = 1000
    assert meets_target((999).to_bytes(32, "big"), target)
    assert not meets_target((1000).to_bytes(32, "big"), target)
    assert not meets_target((1001).to_bytes(32, "big"), target)
    assert not meets_target(bytes(32), 0)
    assert meets_target(b"\xff" * 32, 2**256)
    assert not meets_target(b"\xff" * 32, 2**256 - 1)


def test_success_probability() -> None:
    assert success_probability(2**255, 1) == pytest.approx(0.5)
    assert success_probability(2**255, 2) == pytest.approx(0.75)
    assert success_probability(0, 10**6) == 0.0
    assert success_probability(DEFAULT_TARGET, 0) == 0.0
    assert success_probability(2**256, 1) == 1.0
    p = DEFAULT_TARGET / 2**256
    assert success_probability(DEFAULT_TARGET, 100) == pytest.approx(1 - (1 - p) ** 100)


def test_search_finds_nonce_for_easy_target() -> None:
    target = 2**252
    prefix = b"header"
    nonce, trials = search_nonce(prefix, suffix, target, start=5, max_trials=10_000)
    assert nonce is not None
    assert trials == nonce - 5 + 1
    assert meets_target(hashlib.sha256(prefix + suffix(nonce)).digest(), target)
    for earlier in range(5, nonce):
        assert not meets_target(hashlib.sha256(prefix + suffix(earlier)).digest(), target)


def test_search_gives_up_on_impossible_target() -> None:
    assert search_nonce(b"header", suffix, 0, start=0, max_trials=500) == (None, 500)


def test_search_with_no_trials() -> None:
    assert search_nonce(b"header", suffix, 2**256, start=0, max_trials=0) == (None, 0)
    with pytest.raises(ValueError):
        search_nonce(b"header", suffix, 2**256, start=0, max_trials=-1)


def test_search_counts_a_first_try_success() -> None:
    assert search_nonce(b"x", suffix, 2**256, start=42, max_trials=3) == (42, 1)


@pytest.mark.parametrize(
    ("text", "value"), [("2**244-1", 2**244 - 1), ("2 ** 240", 2**240), ("1000", 1000), ("16**3 - 6", 4090)]
)
def test_parse_target_reads_power_minus_integer(text: str, value: int) -> None:
    assert parse_target(text) == value


@pytest.mark.parametrize("text", ["2^244", "two", "2**x", ""])
def test_parse_target_refuses_anything_else_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="target must look like"):
        parse_target(text)
