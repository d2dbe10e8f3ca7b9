"""The pure rules: draws, election, median, selection, weights, blacklist, rewards, and parameter checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainlab.ledger.hashing import sha256
from chainlab.protocols.bflc import BflcParams, committee, rules
from chainlab.protocols.bflc.messages import Scores

IDS = [sha256(bytes([i])) for i in range(20)]


@given(st.binary(min_size=1, max_size=8), st.integers(0, 25))
def test_a_draw_is_a_sorted_subset_of_the_asked_size(seed: bytes, count: int) -> None:
    drawn = committee.draw(seed, b"x", IDS, count)
    assert len(drawn) == min(count, len(IDS)) and set(drawn) <= set(IDS) and list(drawn) == sorted(drawn)
    assert drawn == committee.draw(seed, b"x", reversed(IDS), count)  # order of candidates does not matter


def test_trainers_come_from_outside_the_committee_and_the_blacklist() -> None:
    drawn = committee.trainers(b"block", IDS, IDS[:4], IDS[4:6], 10)
    assert len(drawn) == 10 and not set(drawn) & set(IDS[:6])
    assert committee.leader(IDS[:3], 0) == min(IDS[:3]) and committee.leader(IDS[:3], 1) == sorted(IDS[:3])[1]
    assert committee.seats(0.4, 5) == 2 and committee.active_count(0.1, 3) == 1


def test_election_by_score_takes_the_best_and_skips_the_blacklisted() -> None:
    scores = {IDS[0]: 0.9, IDS[1]: 0.8, IDS[2]: 0.8, IDS[3]: 0.1}
    assert committee.elect(scores, 2, "score", b"s") == tuple(sorted((IDS[0], min(IDS[1], IDS[2]))))
    assert IDS[0] not in committee.elect(scores, 2, "score", b"s", blacklist=[IDS[0]])
    assert len(committee.elect(scores, 2, "random", b"s")) == 2


def test_median_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    assert rules.median([0.1, 0.9, 0.5]) == 0.5
    assert rules.median([0.4, 0.2, 0.8, 0.6]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        rules.median([])


def test_selection_rank_and_stream() -> None:
    scores = {IDS[i]: s for i, s in enumerate([0.9, 0.2, 0.7, 0.5])}
    rank = BflcParams()
    assert rules.select(scores, rank, 4) == (IDS[0], IDS[2])  # ceil(0.5 * 4)
    stream = BflcParams(selection="stream", theta=0.6, k_share=1.0)
    assert rules.select(scores, stream, 4) == (IDS[0], IDS[2])


def test_an_update_qualifies_only_at_or_above_the_committees_score_of_w_t() -> None:
    scores = {IDS[i]: s for i, s in enumerate([0.9, 0.2, 0.7, 0.5])}
    vectors = [Scores.of(1, b"k%d" % i, {}, base) for i, base in enumerate([0.6, 0.8, 0.4])]
    params = BflcParams(k_share=1.0)
    assert rules.model_floor(vectors, params) == 0.6
    assert rules.select(scores, params, 4, rules.model_floor(vectors, params)) == (IDS[0], IDS[2])
    # Fewer than k updates above the floor: only those are packed, rank notwithstanding.
    assert rules.select(scores, BflcParams(), 4, 0.8) == (IDS[0],)
    assert rules.model_floor(vectors, BflcParams(floor="none")) == 0.0 == rules.model_floor([], params)


def test_weights_blacklist_and_rewards() -> None:
    params = BflcParams(blacklist_below=0.3, reward=10.0)
    assert rules.coefficients([1, 3], params) == (0.25, 0.75)
    assert rules.coefficients([1, 3], BflcParams(weighting="unweighted")) == (0.5, 0.5)
    assert rules.blacklisted({IDS[0]: 0.1, IDS[1]: 0.5}, params) == (IDS[0],)
    paid = rules.rewards([(IDS[0], 0.6), (IDS[1], 0.2)], params)
    assert sum(r.amount for r in paid) == pytest.approx(10.0) and rules.rewards([(IDS[0], 0.0)], params) == ()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"method": "fedprox"}, "method"),
        ({"active": 0.0}, "active"),
        ({"committee": 1.5}, "committee"),
        ({"rounds": 0}, "rounds"),
        ({"blacklist_below": 2}, "blacklist_below"),
        ({"sigma": -1}, "sigma"),
        ({"selection": "vote"}, "selection"),
        ({"floor": "median"}, "floor"),
        ({"resend_after": -1}, "resend_after"),
        ({"local_steps": 0, "local_epochs": 0}, "local training"),
        ({"unknown": 1}, "unknown protocol parameter"),
    ],
)
def test_bad_parameters_are_named(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BflcParams.from_mapping(bad)


def test_steps_follow_epochs_or_the_override() -> None:
    assert BflcParams(local_epochs=2, batch_size=10).steps_for(25) == 5
    assert BflcParams(local_steps=3).steps_for(1000) == 3
