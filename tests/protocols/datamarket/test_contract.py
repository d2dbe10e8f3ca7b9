"""The market contract: every rejection of protocols.md 4.2 by its name, the DRT rules' arithmetic, conservation."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.protocols.datamarket import perceptron
from chainlab.protocols.datamarket.contract import Market, addresses, well_formed_cid
from chainlab.protocols.datamarket.messages import (
    AddData,
    Body,
    PublishAccuracy,
    Refund,
    Report,
    RevealTestSet,
    Transaction,
    UploadModel,
)
from tests.protocols.datamarket.market import (
    ALICE,
    BOB,
    CID_V0,
    FEATURES,
    OWNER,
    START,
    TAU,
    TAU2,
    TEST_COMMITMENT,
    create_body,
    fresh,
    rejected,
    sample,
    sample_file,
    stored,
    tx,
)

Store = dict[bytes, bytes | None]
GOOD = AddData(sample(True), 1)  # the model agrees
BAD = AddData(sample(True), 0)  # the model disagrees (and still does after learning from it)


def added(
    market: Market,
    who: Identity,
    body: AddData,
    at: int,
    value: int = 100,
    store: dict[bytes, bytes | None] | None = None,
) -> int:
    outcome = market.apply(tx(who, body, value), at, store)
    assert outcome.accepted, outcome
    return outcome.record


# -- any transaction ---------------------------------------------------------------------------------------------


def test_a_forged_signature_is_rejected_and_does_not_block_the_original() -> None:
    market = fresh()
    good = tx(ALICE, GOOD, 100)
    forged = dataclasses.replace(good, signature=b"\x00" * 64)
    assert rejected(market.apply(forged, 5)) == "tx.bad_signature"
    assert market.apply(good, 5).accepted


def test_a_transaction_paying_more_than_the_balance_is_rejected() -> None:
    assert rejected(fresh().apply(tx(ALICE, GOOD, START + 1), 5)) == "tx.insufficient_balance"


def test_a_transaction_without_exactly_one_body_is_malformed() -> None:
    empty = Transaction(ALICE.public_key, 1).signed_by(ALICE)
    two = Transaction(ALICE.public_key, 2, 0, add=GOOD, refund=Refund(0)).signed_by(ALICE)
    market = fresh()
    assert rejected(market.apply(empty, 5)) == "tx.malformed"
    assert rejected(market.apply(two, 5)) == "tx.malformed"


def test_a_replayed_transaction_is_rejected() -> None:
    market = fresh()
    once = tx(ALICE, GOOD, 100)
    assert market.apply(once, 5).accepted
    assert rejected(market.apply(once, 6)) == "tx.replayed"


def test_nothing_but_create_market_comes_before_the_market() -> None:
    market = Market.genesis({ALICE.node_id: START})
    assert rejected(market.apply(tx(ALICE, GOOD, 100), 5)) == "tx.no_market"


# -- CreateMarket ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"tau2": TAU + 7 * 100},  # DRT: tau2 must exceed tau + 7 days
        {"tau": 0},
        {"weights": (0,) * FEATURES},
        {"features": 0},
        {"test_commitment": b"short"},
        {"count": 0},
    ],
)
def test_bad_market_parameters_are_rejected(overrides: dict[str, object]) -> None:
    market = Market.genesis({OWNER.node_id: START})
    outcome = market.apply(tx(OWNER, create_body(**overrides), value=10), 0)
    assert rejected(outcome) == "mk.bad_params"
    assert market.terms is None and market.balances[OWNER.node_id] == START


def test_a_second_market_is_rejected_and_the_fund_goes_to_the_pool() -> None:
    market = fresh(fund=1_000)
    assert market.pool == 1_000 and market.balances[OWNER.node_id] == 5 * START - 1_000
    assert rejected(market.apply(tx(OWNER, create_body(), value=10), 1)) == "mk.exists"


# -- AddData ---------------------------------------------------------------------------------------------------


def test_drt_cost_falls_with_the_time_since_the_last_update() -> None:
    market = fresh()
    # 1 round is 864 s at 100 rounds a day: floor(sqrt(864)) = 29, so 60 // 29 = 2 units.
    assert market.cost(1) == 2
    assert market.cost(100) == max(1, 60 // 293)
    record = added(market, ALICE, GOOD, 1, value=50)
    assert market.records[record].initial_deposit == 2 and market.balances[ALICE.node_id] == START - 2
    assert market.escrow == 2


def test_a_fixed_deposit_replaces_the_cost_function() -> None:
    market = Market.genesis({OWNER.node_id: START, ALICE.node_id: START})
    assert market.apply(tx(OWNER, create_body(fixed_deposit=7), value=0), 0).accepted
    assert market.cost(50) == 7


def test_an_offer_below_the_cost_is_rejected() -> None:
    assert rejected(fresh().apply(tx(ALICE, GOOD, 1), 1)) == "add.insufficient_deposit"


def test_an_addition_within_a_second_of_the_last_update_is_too_soon() -> None:
    market = fresh()
    assert rejected(market.apply(tx(ALICE, GOOD, 100), 0)) == "add.too_soon"
    added(market, ALICE, GOOD, 3)
    assert rejected(market.apply(tx(BOB, AddData(sample(True, 1), 1), 100), 3)) == "add.too_soon"


def test_the_same_data_label_time_and_sender_is_a_duplicate() -> None:
    market = fresh()
    added(market, ALICE, GOOD, 3)
    assert rejected(market.apply(tx(ALICE, GOOD, 100), 3)) == "add.duplicate"


@pytest.mark.parametrize("body", [AddData(b"\x80", 1), AddData(sample(True), 2), AddData(b"\x80\x00\x00", 1)])
def test_data_off_the_schema_is_rejected(body: AddData) -> None:
    assert rejected(fresh().apply(tx(ALICE, body, 100), 3)) == "add.schema_mismatch"


def test_both_cid_forms_are_well_formed_and_nothing_else() -> None:
    v1 = stored(b"x", {})
    assert well_formed_cid(v1) and v1.startswith(b"bafk") and well_formed_cid(CID_V0)
    assert not well_formed_cid(sha256(b"d")) and not well_formed_cid(CID_V0[:-1] + b"0")  # 0 is not base58
    assert not well_formed_cid(v1[:-1] + b"1") and not well_formed_cid(b"")  # 1 is not base32


@pytest.mark.parametrize(
    "body",
    [
        AddData(cid=b"short"),
        AddData(cid=sha256(b"d")),
        AddData(cid=CID_V0, labels_cid=CID_V0),
        AddData(sample(True), 1, cid=CID_V0),
        AddData(cid=CID_V0, y=1),
    ],
)
def test_a_malformed_cid_contribution_is_rejected(body: AddData) -> None:
    assert rejected(fresh().apply(tx(ALICE, body, 100), 3, {CID_V0: sample_file((sample(True), 1))})) == "add.bad_cid"


@pytest.mark.parametrize(
    "content",
    [None, b"not a sample file", sample_file(), perceptron.encode_samples(FEATURES, [(sample(True), 1)] * 1_001)],
)
def test_a_cid_whose_content_is_missing_or_no_sample_file_is_rejected(content: bytes | None) -> None:
    market = fresh()
    assert rejected(market.apply(tx(ALICE, AddData(cid=CID_V0), 100), 3, {CID_V0: content})) == "add.bad_cid"
    assert market.escrow == 0 and not market.records


@pytest.mark.parametrize(
    "content",
    [perceptron.encode_samples(FEATURES + 8, [(b"\x80\x00\x00", 1)]), sample_file((sample(True), 2))],
)
def test_a_cid_file_off_the_schema_is_rejected(content: bytes) -> None:
    assert rejected(fresh().apply(tx(ALICE, AddData(cid=CID_V0), 100), 3, {CID_V0: content})) == "add.schema_mismatch"


def test_a_cid_counts_as_one_input_under_one_deposit_and_trains_on_its_samples() -> None:
    market, store = fresh(), Store()
    address = stored(sample_file((sample(False, 1), 1), (sample(False, 2), 1), (sample(False, 3), 1)), store)
    before = market.model.copy()
    record = added(market, ALICE, AddData(cid=address), 3, store=store)
    assert len(market.records) == 1 and market.escrow == market.records[record].initial_deposit
    assert len(market.records[record].samples) == 3 and market.model.c == before.c + 3 and market.model.w != before.w


def test_a_cid_record_is_refunded_when_the_model_agrees_with_most_of_its_samples() -> None:
    market, store = fresh(), Store()
    mostly = stored(sample_file((sample(True, 1), 1), (sample(True, 2), 1), (sample(False, 3), 1)), store)
    flipped = stored(sample_file((sample(True, 4), 0), (sample(True, 5), 0), (sample(False, 6), 1)), store)
    good = added(market, ALICE, AddData(cid=mostly), 3, store=store)
    bad = added(market, BOB, AddData(cid=flipped), 5, store=store)
    later = 5 + TAU + 1
    assert market.apply(tx(ALICE, Refund(good)), later).accepted
    assert rejected(market.apply(tx(BOB, Refund(bad)), later)) == "rf.model_disagrees"
    assert market.apply(tx(ALICE, Report(bad)), later).model_disagrees


def test_a_block_names_each_well_formed_address_once() -> None:
    v1 = stored(b"w", {})
    txs = [tx(ALICE, AddData(cid=CID_V0)), tx(BOB, AddData(cid=CID_V0)), tx(OWNER, RevealTestSet(v1))]
    txs += [tx(BOB, AddData(cid=b"bad")), tx(BOB, UploadModel(0, v1, (), FEATURES)), tx(ALICE, GOOD)]
    assert addresses(txs) == [CID_V0, v1]


def test_an_inline_addition_trains_the_model() -> None:
    market = fresh()
    before = list(market.model.w)
    added(market, ALICE, BAD, 3)
    assert market.model.w != before and market.model.c == 2


# -- Refund ----------------------------------------------------------------------------------------------------


def test_a_refund_pays_back_the_deposit_and_counts_good_data() -> None:
    market = fresh()
    record = added(market, ALICE, GOOD, 3)
    outcome = market.apply(tx(ALICE, Refund(record)), 3 + TAU + 1)
    assert outcome.accepted and outcome.amount == market.records[record].initial_deposit
    assert market.balances[ALICE.node_id] == START and market.escrow == 0
    assert market.num_good[ALICE.node_id] == 1 and market.total_good == 1


def test_refund_rejections() -> None:
    market = fresh()
    good = added(market, ALICE, GOOD, 3)
    bad = added(market, ALICE, BAD, 5)
    later = 5 + TAU + 1
    assert rejected(market.apply(tx(ALICE, Refund(99)), later)) == "rf.unknown_record"
    assert rejected(market.apply(tx(BOB, Refund(good)), later)) == "rf.not_submitter"
    assert rejected(market.apply(tx(ALICE, Refund(good)), 3 + TAU)) == "rf.too_early"
    assert rejected(market.apply(tx(ALICE, Refund(bad)), later)) == "rf.model_disagrees"
    assert market.apply(tx(ALICE, Refund(good)), later).accepted
    assert rejected(market.apply(tx(ALICE, Refund(good)), later + 1)) == "rf.already_claimed"


def test_a_refund_of_a_record_taken_in_full_has_nothing_left() -> None:
    market = fresh()
    record = added(market, ALICE, GOOD, 3)
    assert market.apply(tx(BOB, Report(record)), 3 + TAU2).accepted  # anyone takes it all after tau2
    assert rejected(market.apply(tx(ALICE, Refund(record)), 3 + TAU2 + 1)) == "rf.nothing_left"


# -- Report ----------------------------------------------------------------------------------------------------


def _with_good_data(market: Market, who: Identity, at: int = 2) -> int:
    """who adds good data at `at` and has it refunded after tau; the time of the refund."""
    record = added(market, who, AddData(sample(True, 7), 1), at)
    assert market.apply(tx(who, Refund(record)), at + TAU + 1).accepted
    return at + TAU + 1


def test_a_report_takes_the_deposit_share_of_the_reporters_good_data_plus_the_reward() -> None:
    market = fresh(fund=1_000)
    _with_good_data(market, BOB)
    bad = added(market, ALICE, BAD, 5, value=100)
    deposit = market.records[bad].initial_deposit
    before = market.balances[BOB.node_id]
    outcome = market.apply(tx(BOB, Report(bad)), 5 + TAU + 1)
    assert outcome.accepted and outcome.model_disagrees
    assert outcome.amount == deposit * 1 // 1 and outcome.reward == 1  # num_good 1 of total_good 1
    assert market.balances[BOB.node_id] == before + deposit + 1 and market.pool == 999


def test_after_tau2_a_reporter_takes_all_that_is_left_even_its_own() -> None:
    market = fresh()
    record = added(market, ALICE, BAD, 3)
    outcome = market.apply(tx(ALICE, Report(record)), 3 + TAU2)
    assert outcome.accepted and outcome.amount == market.records[record].initial_deposit


def test_report_rejections() -> None:
    market = fresh()
    good = added(market, ALICE, GOOD, 3)
    bad = added(market, ALICE, BAD, 5)
    later = 5 + TAU + 1
    assert rejected(market.apply(tx(BOB, Report(99)), later)) == "rp.unknown_record"
    assert rejected(market.apply(tx(ALICE, Report(bad)), later)) == "rp.own_data"
    assert rejected(market.apply(tx(BOB, Report(bad)), 5 + TAU)) == "rp.too_early"
    assert rejected(market.apply(tx(BOB, Report(good)), later)) == "rp.model_agrees"
    assert rejected(market.apply(tx(BOB, Report(bad)), later)) == "rp.no_good_data"
    refunded = _with_good_data(market, BOB, at=7)
    assert market.apply(tx(BOB, Report(bad)), refunded).accepted
    assert rejected(market.apply(tx(BOB, Report(bad)), refunded + 1)) == "rp.already_claimed"


def test_a_report_of_a_record_with_nothing_left_is_rejected() -> None:
    market = fresh()
    record = added(market, ALICE, GOOD, 3)
    assert market.apply(tx(ALICE, Refund(record)), 3 + TAU + 1).accepted
    assert rejected(market.apply(tx(BOB, Report(record)), 3 + TAU2)) == "rp.nothing_left"


# -- UploadModel, PublishAccuracy, RevealTestSet -------------------------------------------------------------------


def test_uploaded_models_keep_their_lineage() -> None:
    market, store = fresh(), Store()
    w1 = stored(perceptron.encode_model(market.model, FEATURES), store)
    w2 = stored(perceptron.encode_model(perceptron.Perceptron.zero(FEATURES), FEATURES), store)
    first = market.apply(tx(BOB, UploadModel(0, w1, (CID_V0,), FEATURES)), 3, store)
    second = market.apply(tx(ALICE, UploadModel(first.record, w2, (), FEATURES)), 4, store)
    assert first.accepted and second.accepted and market.models[second.record].parent == first.record
    assert market.models[first.record].data_cids == (CID_V0,)
    assert rejected(market.apply(tx(BOB, UploadModel(9, w1, (), FEATURES)), 5, store)) == "um.unknown_parent"


def test_an_upload_off_the_schema_is_rejected() -> None:
    market, store = fresh(), Store()
    w1 = stored(perceptron.encode_model(market.model, FEATURES), store)
    wide = stored(perceptron.encode_model(perceptron.Perceptron.zero(FEATURES + 1), FEATURES + 1), store)
    multi = stored(perceptron.encode_model(perceptron.MultiPerceptron.zero(FEATURES, 3), FEATURES), store)
    junk = stored(b"no model", store)
    for body in (UploadModel(0, w1, (), FEATURES + 1), UploadModel(0, wide, (), FEATURES)):
        assert rejected(market.apply(tx(BOB, body), 5, store)) == "um.schema_mismatch"
    for weights in (multi, junk):
        assert rejected(market.apply(tx(BOB, UploadModel(0, weights, (), FEATURES)), 5, store)) == "um.schema_mismatch"


def test_an_upload_naming_a_bad_or_missing_address_is_rejected() -> None:
    market, store = fresh(), Store()
    w1 = stored(perceptron.encode_model(market.model, FEATURES), store)
    for body in (UploadModel(0, sha256(b"w"), (), FEATURES), UploadModel(0, w1, (b"bad",), FEATURES)):
        assert rejected(market.apply(tx(BOB, body), 5, store)) == "um.bad_cid"
    assert rejected(market.apply(tx(BOB, UploadModel(0, CID_V0, (), FEATURES)), 5, store)) == "um.bad_cid"


def test_only_the_owner_publishes_accuracy_of_a_known_model() -> None:
    market = fresh()
    assert market.apply(tx(OWNER, PublishAccuracy(0, 0.8)), 3).accepted
    assert market.accuracies == [(3, 0, 0.8)]
    assert rejected(market.apply(tx(ALICE, PublishAccuracy(0, 0.9)), 4)) == "pa.not_owner"
    assert rejected(market.apply(tx(OWNER, PublishAccuracy(5, 0.9)), 4)) == "pa.unknown_model"
    assert rejected(market.apply(tx(OWNER, PublishAccuracy(0, 1.5)), 4)) == "pa.bad_accuracy"


def test_the_revealed_test_set_must_match_its_commitment() -> None:
    market, store = fresh(), Store()
    test = stored(b"the hidden test set", store)
    other = stored(b"another set", store)
    assert rejected(market.apply(tx(ALICE, RevealTestSet(test)), 3, store)) == "rv.not_owner"
    assert rejected(market.apply(tx(OWNER, RevealTestSet(other)), 3, store)) == "rv.hash_mismatch"
    assert rejected(market.apply(tx(OWNER, RevealTestSet(CID_V0)), 3, store)) == "rv.hash_mismatch"  # not stored
    assert rejected(market.apply(tx(OWNER, RevealTestSet(TEST_COMMITMENT)), 3, store)) == "rv.hash_mismatch"
    assert market.apply(tx(OWNER, RevealTestSet(test)), 4, store).accepted and market.revealed
    assert rejected(market.apply(tx(OWNER, RevealTestSet(test)), 5, store)) == "rv.already_revealed"


# -- conservation ------------------------------------------------------------------------------------------------

_PEOPLE = (OWNER, ALICE, BOB)
_action = st.tuples(
    st.integers(0, 2),  # who
    st.sampled_from(("add_good", "add_bad", "add_cid", "refund", "report", "publish", "upload")),
    st.integers(0, 12),  # record index, or the label salt
    st.integers(0, 3 * TAU2 // 2),  # time step
    st.integers(0, 3 * START // 2),  # value offered
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_action, max_size=40))
def test_balances_escrow_and_pool_are_conserved(actions: list[tuple[int, str, int, int, int]]) -> None:
    market, store = fresh(fund=500), Store()
    files = [stored(sample_file((sample(i % 2 == 0, i), i % 2), (sample(True, i + 1), 1)), store) for i in range(4)]
    weights = stored(perceptron.encode_model(market.model, FEATURES), store)
    total = market.total()
    now = 1
    for who, kind, index, step, value in actions:
        now += step // 10 if kind.startswith("add") else step
        body: Body
        match kind:
            case "add_good":
                body = AddData(sample(True, index), 1)
            case "add_bad":
                body = AddData(sample(True, index), 0)
            case "add_cid":
                body = AddData(cid=files[index % len(files)] if index < 10 else CID_V0)
            case "refund":
                body = Refund(index)
            case "report":
                body = Report(index)
            case "publish":
                body = PublishAccuracy(0, index / 12)
            case _:
                body = UploadModel(0, weights, (), FEATURES)
        market.apply(tx(_PEOPLE[who], body, value if kind.startswith("add") else 0), now, store)
        assert market.total() == total
        assert market.escrow == sum(r.claimable for r in market.records)
        assert all(v >= 0 for v in market.balances.values()) and market.pool >= 0
    # The state root's cached model digest is the digest of the model as it is now.
    fresh_root = dataclasses.replace(market, balances=dict(market.balances)).state_root(b"")
    assert market.state_root(b"") == fresh_root


def test_a_multiclass_market_trains_one_row_per_class_and_checks_labels_against_its_classes() -> None:
    zero = perceptron.MultiPerceptron.zero(FEATURES, 3)
    w, a = zero.flat
    market = Market.genesis({OWNER.node_id: START, ALICE.node_id: START})
    create = create_body(weights=tuple(w), sums=tuple(a), classes=3)
    assert market.apply(tx(OWNER, create, 10), 0).accepted and market.classes == 3
    assert market.apply(tx(ALICE, AddData(sample(True), 2), 100), 3).accepted
    assert isinstance(market.model, perceptron.MultiPerceptron) and market.predict(sample(True)) == 2
    assert rejected(market.apply(tx(ALICE, AddData(sample(True), 3), 100), 5)) == "add.schema_mismatch"


@pytest.mark.parametrize("classes", [1, 256])
def test_a_market_of_one_or_too_many_classes_is_rejected(classes: int) -> None:
    market = Market.genesis({OWNER.node_id: START})
    assert rejected(market.apply(tx(OWNER, create_body(classes=classes), 10), 0)) == "mk.bad_params"
