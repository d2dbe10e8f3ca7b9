"""Effects: what a sans-IO protocol node asks its driver to do. Plain, protocol-neutral data, no behaviour.

Both drivers dispatch every effect kind exhaustively; an effect a driver does not know is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chainlab.protocols.spec import ModelSpec

if TYPE_CHECKING:
    from chainlab.protocols.base import RecordValue, Timer


@dataclass(frozen=True)
class Broadcast:
    """Flood a message to every peer. size_mb is its declared size, charged identically by sim and netem.

    payload_mb is the part of size_mb that is model or gradient data (the rest is control): drivers count the
    bytes on the wire in both kinds, the split seed 002's Figure 5 and protocols.md section 6 compare.
    """

    message: object  # one of the protocol's messages; the codec encodes it
    size_mb: float
    payload_mb: float = 0.0


@dataclass(frozen=True)
class Send:
    """Deliver a message to one peer (its on_message), routed over the network's shortest up path.

    size_mb is charged per hop and payload_mb counted as for Broadcast. Nothing comes back: a message to an unknown
    or unreachable peer is lost, as on a real network (protocols that need an answer time out).
    """

    peer: bytes
    message: object  # one of the protocol's messages; the codec encodes it
    size_mb: float
    payload_mb: float = 0.0  # as Broadcast's


@dataclass(frozen=True)
class StartTimer:
    """Call on_timer(timer) after `after` rounds."""

    timer: Timer
    after: int


@dataclass(frozen=True)
class TrainModel:
    """Train(Resample(D); f) on the named datasets, plus the node's private data if asked; result: model bytes."""

    spec: ModelSpec
    datasets: tuple[bytes, ...]  # commitments of datasets the node holds
    with_private: bool
    seed: int


@dataclass(frozen=True)
class EvaluateEnsemble:
    """Metric(Aggregate(f(X; w_1..w_J)), y) on a held dataset; result: the metric, or EvaluationFailed."""

    models: tuple[tuple[bytes, bytes], ...]  # (model key, model bytes); the key names the bytes in every cache
    spec: ModelSpec
    dataset: bytes  # commitment
    aggregate: str
    metric: str


PRIVATE = b""
"""The dataset reference of a node's own private data D_Mi in the weight-space operations below."""


@dataclass(frozen=True)
class InitModel:
    """Fresh weights of spec's family, initialised from seed; result: weight bytes."""

    spec: ModelSpec
    seed: int


@dataclass(frozen=True)
class TrainSteps:
    """`steps` SGD steps from `weights`, each on batch_size samples drawn with replacement from a held dataset.

    The samples come from seed, so a stream of batches is a sequence of seeds. `iteration` is how many steps the
    weights have had before (learning-rate schedules count from it). Result: the new weight bytes, or
    EvaluationFailed if `weights` do not decode to spec's architecture.
    """

    spec: ModelSpec
    weights: bytes
    dataset: bytes  # a held dataset's commitment, or PRIVATE
    steps: int
    batch_size: int
    seed: int
    iteration: int = 0


@dataclass(frozen=True)
class EvaluateModel:
    """Accuracy of weights on a held dataset: all of it, or `samples` drawn without replacement with seed.

    Result: the accuracy in [0, 1], or EvaluationFailed if the weights do not decode to spec's architecture.
    """

    spec: ModelSpec
    weights: bytes
    dataset: bytes  # a held dataset's commitment, or PRIVATE
    samples: int = 0
    seed: int = 0


@dataclass(frozen=True)
class Aggregate:
    """Combine models of one architecture: "weighted" is sum_i coefficients[i] * models[i] (FedAvg and its
    variants), "median" the coordinate-wise median (coefficients unused). Result: weight bytes, or
    EvaluationFailed if any model does not decode."""

    spec: ModelSpec
    models: tuple[bytes, ...]
    coefficients: tuple[float, ...] = ()
    rule: str = "weighted"


@dataclass(frozen=True)
class Perturb:
    """An attacker's weights: "uniform" replaces every weight with U(0, scale), "gaussian" adds N(0, scale^2).

    Result: weight bytes, or EvaluationFailed if `weights` do not decode.
    """

    spec: ModelSpec
    weights: bytes
    kind: str
    scale: float
    seed: int


@dataclass(frozen=True)
class PrivateGradient:
    """LearningChain's holder step on w_t (seed 003 Eq. 6-12): the gradient of the loss summed over a batch of the
    held dataset (batch 0: all of it), clipped to `bound` per example or as a sum (`clip`), plus the noise of Eq. 10
    at `epsilon` (None: no DP), normalised. A `byzantine` holder sends an N(0, sigma^2) vector instead. The draws
    come from seed. Result: Gradient, or EvaluationFailed if `weights` do not decode to spec's architecture."""

    spec: ModelSpec
    weights: bytes
    dataset: bytes  # a held dataset's commitment, or PRIVATE
    batch: int
    clip: str  # "per_example" (Appendix A) or "sum" (Eq. 9 as printed)
    bound: float  # G
    epsilon: float | None
    seed: int
    byzantine: bool = False
    sigma: float = 200.0


@dataclass(frozen=True)
class AggregateGradients:
    """LearningChain's aggregation (seed 003 Eq. 14-17): from the messages (unit vectors as little-endian float64,
    their norms) in canonical order, select by `rule` ("l_nearest": the `select` largest cosines to their sum;
    "multi_krum": Krum scores with `byzantine` = f), average s_i g_i over the selection and step w_t by -lr times it
    (plus l2 * w_t). Result: Aggregation, or EvaluationFailed if the weights or a vector do not decode."""

    spec: ModelSpec
    weights: bytes
    vectors: tuple[bytes, ...]
    norms: tuple[float, ...]
    rule: str
    select: int  # l (l_nearest)
    byzantine: int  # f (multi_krum: m = n - f are averaged)
    lr: float
    l2: float = 0.0


@dataclass(frozen=True)
class ReadSample:
    """The marketplace contributor's next sample: sample `index` of a held binary dataset (features in {0, 1}) as
    its packed bits (numpy.packbits order) followed by one label byte. Result: bytes."""

    dataset: bytes  # a held dataset's commitment, or PRIVATE
    index: int


@dataclass(frozen=True)
class ReadSamples:
    """The marketplace's sample file: samples start .. start + count - 1 of a held dataset (fewer at its end) as
    magic b"CLMS", features and count (little-endian u32s), then each sample's packed bits and label byte. Result:
    bytes (what a contributor Puts and adds by CID, and the owner's revealed test set)."""

    dataset: bytes  # a held dataset's commitment, or PRIVATE
    start: int
    count: int


@dataclass(frozen=True)
class EvaluatePerceptron:
    """The marketplace owner's accuracy of an integer perceptron (little-endian int64 weights, the bias last) on a
    held binary dataset: predict 1 where w.x + b > 0; with one row of weights per class, the class of the largest
    w_k.x + b_k. Result: the accuracy in [0, 1], or EvaluationFailed if the weights do not match the dataset's
    features and classes."""

    weights: bytes
    dataset: bytes  # a held dataset's commitment, or PRIVATE


WorkOp = (
    TrainModel
    | EvaluateEnsemble
    | InitModel
    | TrainSteps
    | EvaluateModel
    | Aggregate
    | Perturb
    | PrivateGradient
    | AggregateGradients
    | ReadSample
    | ReadSamples
    | EvaluatePerceptron
)
"""An ML operation a Compute effect asks for."""

PERTURB_KINDS = ("uniform", "gaussian")
AGGREGATE_RULES = ("weighted", "median")


@dataclass(frozen=True)
class Compute:
    """Run an ML operation; its result comes back through on_result(job, ...)."""

    job: int
    op: WorkOp


@dataclass(frozen=True)
class Mine:
    """Search nonces n until H(prefix + nonce_tag + n as 8 little-endian bytes) < target; result: the nonce."""

    job: int
    prefix: bytes
    target: int
    nonce_tag: bytes  # the wire bytes before the nonce's 8 bytes (a protobuf fixed64 field's tag)


@dataclass(frozen=True)
class Request:
    """Ask one peer a point-to-point request (its on_request answers); result: the answer's bytes, or None."""

    job: int
    peer: bytes
    request: object  # one of the protocol's requests; the codec encodes it


@dataclass(frozen=True)
class FetchData:
    """Fetch a dataset by its commitment Hash(D) from a peer; the driver checks the hash and keeps it.

    Result: True once the dataset is held, False if refused, unreachable or not matching its commitment.
    """

    job: int
    peer: bytes
    commitment: bytes


@dataclass(frozen=True)
class Put:
    """Store content in the content-addressed storage every node reaches (IPFS live, a shared store simulated).

    Result: its address, a CID as ASCII bytes, the same for the same content; JobFailed if storage failed (the
    driver's fault, never a peer's).
    """

    job: int
    content: bytes


@dataclass(frozen=True)
class Get:
    """Read content by its address (a CID as ASCII bytes, e.g. from a peer's transaction).

    Result: the content, or None if the address is malformed or no node holds it (what a peer named may be
    missing); JobFailed if storage could not be asked.
    """

    job: int
    address: bytes


@dataclass(frozen=True)
class CancelJob:
    """Abandon a job; its result must not be delivered."""

    job: int


@dataclass(frozen=True)
class Persist:
    """Write a record to the node's store (kind, key, payload; a repeated (kind, key) is a no-op).

    As raft's Ready: a driver writes every Persist of a step, in order, before it acts on any other effect of that
    step, so nothing a node announces (a block it broadcasts, a model it serves) is lost if it is killed just
    after. A node restarted on its store gets the records back, in the order written, through restore().
    """

    kind: str
    key: bytes
    payload: bytes


@dataclass(frozen=True)
class Record:
    """An observation for metrics, logs and results; drivers never act on it."""

    event: str
    data: Mapping[str, RecordValue] = field(default_factory=dict)


Effect = Broadcast | Send | StartTimer | Compute | Mine | Request | FetchData | Put | Get | CancelJob | Persist | Record


@dataclass(frozen=True)
class EvaluationFailed:
    """An EvaluateEnsemble result: the models themselves could not be decoded or run (the peer's fault)."""

    detail: str


@dataclass(frozen=True)
class JobFailed:
    """A job result: the driver failed internally (an exception, missing local data) and gave up retrying.

    This is never evidence against a peer: a node that receives it may try again later, but must not reject
    anybody's block for it.
    """

    detail: str


@dataclass(frozen=True)
class Gradient:
    """A PrivateGradient result: the unit vector g*/s as little-endian float64 bytes, and s = ||g*||."""

    vector: bytes
    norm: float


@dataclass(frozen=True)
class Aggregation:
    """An AggregateGradients result: w_{t+1} as weight bytes, and the indices of the aggregated messages (ascending)."""

    weights: bytes
    selected: tuple[int, ...]


JobResult = bytes | int | float | bool | EvaluationFailed | JobFailed | Gradient | Aggregation | None
"""What on_result receives: model bytes or request answers, a nonce, a metric, a fetch outcome, or a failure."""


def persist_first(effects: list[Effect]) -> list[Effect]:
    """A step's effects in the order a driver carries them out: every Persist (in order), then the rest."""
    return [e for e in effects if isinstance(e, Persist)] + [e for e in effects if not isinstance(e, Persist)]


RECORD_REJECTED = "rejected"  # data: kind, reason, detail
RECORD_INTERNAL_ERROR = "internal_error"  # data: job, error, attempt
