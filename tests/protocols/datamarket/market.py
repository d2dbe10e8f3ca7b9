"""A small market for the contract tests: 16 binary features, an owner and two contributors."""

from __future__ import annotations

from chainlab.ledger.cid import raw_cid
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.protocols.datamarket import perceptron
from chainlab.protocols.datamarket.contract import Market, Outcome
from chainlab.protocols.datamarket.messages import Body, CreateMarket, Transaction

FEATURES = 16
DAY = 100
TAU = DAY
TAU2 = 9 * DAY
OWNER = Identity.from_seed(b"dm-test:owner")
ALICE = Identity.from_seed(b"dm-test:alice")
BOB = Identity.from_seed(b"dm-test:bob")
TEST_COMMITMENT = sha256(b"the hidden test set")
START = 10_000


def model() -> perceptron.Perceptron:
    """A perceptron that predicts label 1 exactly when feature 0 is set."""
    w = [0] * (FEATURES + 1)
    w[0], w[-1] = 10, -1  # a margin: one flipped sample does not change its mind
    return perceptron.Perceptron(w, [0] * (FEATURES + 1), 1)


def create_body(**overrides: object) -> CreateMarket:
    """CreateMarket for the test market."""
    m = model()
    fields: dict[str, object] = {
        "weights": tuple(m.w),
        "features": FEATURES,
        "train_cids": (sha256(b"initial data"),),
        "test_commitment": TEST_COMMITMENT,
        "day": DAY,
        "tau": TAU,
        "tau2": TAU2,
        "reward": 1,
        "sums": tuple(m.a),
        "count": 1,
    } | overrides
    return CreateMarket(**fields)  # type: ignore[arg-type]


def sample(first: bool, salt: int = 0) -> bytes:
    """A sample with feature 0 set or clear, and some other features from salt."""
    bits = (0x8000 if first else 0) | (salt & 0x7FFF)
    return bits.to_bytes(2, "big")


_nonce = [0]


def tx(who: Identity, body: Body, value: int = 0) -> Transaction:
    """A signed transaction with a fresh nonce."""
    _nonce[0] += 1
    return Transaction.of(who.public_key, _nonce[0], body, value).signed_by(who)


def fresh(*, fund: int = 1_000) -> Market:
    """A market created at time 0 with the owner's pool funded."""
    market = Market.genesis({OWNER.node_id: 5 * START, ALICE.node_id: START, BOB.node_id: START})
    outcome = market.apply(tx(OWNER, create_body(), value=fund), 0)
    assert outcome.accepted, outcome
    return market


def rejected(outcome: Outcome) -> str:
    """kind.reason of a rejected outcome ("" if accepted)."""
    return "" if outcome.accepted else f"{outcome.kind}.{outcome.reason}"


def stored(content: bytes, store: dict[bytes, bytes | None]) -> bytes:
    """Put content into a test store as the simulator does: its address, a CIDv1 (raw)."""
    address = raw_cid(content).encode("ascii")
    store[address] = content
    return address


def sample_file(*samples: tuple[bytes, int]) -> bytes:
    """A sample file of the test market's schema."""
    return perceptron.encode_samples(FEATURES, list(samples))


# A CIDv0 address as the storage service (Kubo) gives them: "Qm" and 44 base58 characters.
CID_V0 = b"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
