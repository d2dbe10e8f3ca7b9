"""Model families behind one interface: fit, class probabilities, and a safe byte encoding.

Families in this module: "decision_tree" (scikit-learn) and "softmax" (softmax regression, trained with PyTorch on
one CPU thread, torch imported inside fit). "lenet5" (PyTorch) lives in `lenet.py` and is imported only when asked
for, so processes that never touch a CNN do not pay for importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from chainlab.learning.codec import ModelCodecError, decode_arrays, encode_arrays

if TYPE_CHECKING:
    from sklearn.tree import DecisionTreeClassifier

    from chainlab.learning.lenet import LeNet5Family

__all__ = [
    "FAMILIES",
    "DecisionTreeFamily",
    "LeNet5Family",
    "ModelCodecError",
    "ModelFamily",
    "SoftmaxFamily",
    "SoftmaxModel",
    "TreeModel",
    "check_labels",
    "make_family",
]

FAMILIES = ("decision_tree", "lenet5", "softmax")

# Upper bound on a decoded model's declared class count, so metadata cannot demand absurd allocations.
MAX_CLASSES = 10_000


class ModelFamily(Protocol):
    """A kind of base model: how to fit it, query it, and move it between nodes as bytes."""

    name: str

    def fit(
        self, X: NDArray[np.float32], y: NDArray[np.int64], n_classes: int, shape: tuple[int, ...], seed: int
    ) -> Any:
        """Train a model on (X, y); the same inputs and seed give the same model."""
        ...

    def predict_proba(self, model: Any, X: NDArray[np.float32]) -> NDArray[np.float32]:
        """Class probabilities, (n, n_classes) even for classes that were absent from training."""
        ...

    def encode(self, model: Any) -> bytes:
        """The model as bytes; data only, never code."""
        ...

    def decode(self, data: bytes) -> Any:
        """The model from bytes; raise ModelCodecError on anything but a valid model of this family."""
        ...


def check_labels(y: NDArray[np.int64], n_classes: int) -> None:
    """Raise ValueError unless every label lies in [0, n_classes)."""
    if n_classes < 1:
        raise ValueError("n_classes must be positive")
    if len(y) and (int(np.min(y)) < 0 or int(np.max(y)) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")


def check_meta_classes(meta: Mapping[str, Any], family: str) -> int:
    """Validate a decoded model's metadata header and return its class count."""
    n_classes = meta.get("n_classes")
    if meta.get("family") != family or meta.get("format") != 1:
        raise ModelCodecError(f"not a {family} model")
    if type(n_classes) is not int or not 1 <= n_classes <= MAX_CLASSES:
        raise ModelCodecError("model declares an invalid class count")
    return n_classes


# --- decision tree -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeModel:
    """A fitted tree plus the task's class count (the tree only knows the classes it saw)."""

    estimator: DecisionTreeClassifier
    n_classes: int


# The tree's node table as separate arrays (safetensors has no structured dtypes), with their dtypes.
_NODE_FIELDS = {
    "left_child": "I64",
    "right_child": "I64",
    "feature": "I64",
    "threshold": "F64",
    "impurity": "F64",
    "n_node_samples": "I64",
    "weighted_n_node_samples": "F64",
    "missing_go_to_left": "U8",
}
_TREE_TENSORS = {**_NODE_FIELDS, "values": "F64", "classes": "I64"}


class DecisionTreeFamily:
    """scikit-learn's DecisionTreeClassifier, seeded per fit, encoded as its arrays."""

    name: str = "decision_tree"

    def __init__(self, **params: Any) -> None:
        from sklearn.tree import DecisionTreeClassifier

        if "random_state" in params:
            raise ValueError("random_state is set from the seed of each fit")
        try:
            DecisionTreeClassifier(**params)
        except TypeError as exc:
            raise ValueError(f"bad decision_tree parameters: {exc}") from exc
        self.params = dict(params)

    def fit(
        self, X: NDArray[np.float32], y: NDArray[np.int64], n_classes: int, shape: tuple[int, ...], seed: int
    ) -> TreeModel:
        """Fit DecisionTreeClassifier(random_state=seed, **params); `shape` is irrelevant to trees."""
        from sklearn.tree import DecisionTreeClassifier

        check_labels(y, n_classes)
        estimator = DecisionTreeClassifier(random_state=seed, **self.params).fit(X, y)
        return TreeModel(estimator, n_classes)

    def predict_proba(self, model: TreeModel, X: NDArray[np.float32]) -> NDArray[np.float32]:
        """Leaf class frequencies, widened to all n_classes columns."""
        seen = model.estimator.predict_proba(X)
        out = np.zeros((len(X), model.n_classes), dtype=np.float32)
        out[:, model.estimator.classes_.astype(np.int64)] = seen
        return out

    def encode(self, model: TreeModel) -> bytes:
        """The fitted tree's node table, leaf values and classes as safetensors arrays."""
        estimator = model.estimator
        state = estimator.tree_.__getstate__()
        nodes = state["nodes"]
        arrays = {name: np.asarray(nodes[name]) for name in _NODE_FIELDS}
        arrays["values"] = np.asarray(state["values"], dtype=np.float64)
        arrays["classes"] = np.asarray(estimator.classes_, dtype=np.int64)
        meta = {
            "family": self.name,
            "format": 1,
            "n_classes": model.n_classes,
            "n_features": int(estimator.n_features_in_),
            "max_depth": int(state["max_depth"]),
        }
        return encode_arrays(arrays, meta)

    def decode(self, data: bytes) -> TreeModel:
        """Rebuild and structurally validate a tree from its arrays."""
        arrays, meta = decode_arrays(data, _TREE_TENSORS)
        n_classes = check_meta_classes(meta, self.name)
        try:
            estimator = _rebuild_tree(arrays, meta, self.params)
            _validate_tree(estimator, n_classes)
        except ModelCodecError:
            raise
        except Exception as exc:
            raise ModelCodecError(f"malformed decision tree: {exc}") from exc
        return TreeModel(estimator, n_classes)


def _rebuild_tree(arrays: Mapping[str, NDArray[Any]], meta: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
    """A fitted DecisionTreeClassifier from the arrays of encode(); sklearn's own Tree state format."""
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import NODE_DTYPE, Tree

    classes = arrays["classes"]
    count = len(arrays["left_child"])
    if any(arrays[name].shape != (count,) for name in _NODE_FIELDS):
        raise ModelCodecError("tree node arrays differ in length")
    if arrays["values"].shape != (count, 1, len(classes)):
        raise ModelCodecError("tree leaf values have the wrong shape")
    nodes = np.zeros(count, dtype=NODE_DTYPE)
    for name in _NODE_FIELDS:
        nodes[name] = arrays[name]
    n_features = int(meta["n_features"])
    tree = Tree(n_features, np.array([len(classes)], dtype=np.intp), 1)
    state = {"max_depth": int(meta["max_depth"]), "node_count": count, "nodes": nodes, "values": arrays["values"]}
    tree.__setstate__(state)
    estimator = DecisionTreeClassifier(**params)
    estimator.n_features_in_ = n_features
    estimator.n_outputs_ = 1
    estimator.classes_ = classes
    estimator.n_classes_ = len(classes)
    estimator.max_features_ = n_features
    estimator.tree_ = tree
    return estimator


def _validate_tree(estimator: DecisionTreeClassifier, n_classes: int) -> None:
    # sklearn's Cython predict trusts node indices blindly; a forged tree could read out of bounds or loop
    # forever, so check the structure before anything walks it.
    classes = np.asarray(estimator.classes_)
    if classes.ndim != 1 or classes.dtype.kind not in "iu" or len(classes) == 0:
        raise ModelCodecError("tree classes must be a non-empty integer vector")
    if classes.min() < 0 or classes.max() >= n_classes or np.any(np.diff(classes) <= 0):
        raise ModelCodecError("tree classes out of range or unsorted")
    if estimator.n_outputs_ != 1:
        raise ModelCodecError("multi-output trees are not supported")
    tree = estimator.tree_
    count = int(tree.node_count)
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    if count < 1 or left.shape != (count,) or right.shape != (count,) or feature.shape != (count,):
        raise ModelCodecError("inconsistent tree arrays")
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        raise ModelCodecError("tree node with a single child")
    inner = np.flatnonzero(~leaf)
    # Children strictly after their parent: every walk from the root terminates inside the array.
    for child in (left[inner], right[inner]):
        if np.any(child <= inner) or np.any(child >= count):
            raise ModelCodecError("tree child index out of range")
    if np.any(feature[inner] < 0) or np.any(feature[inner] >= int(estimator.n_features_in_)):
        raise ModelCodecError("tree feature index out of range")
    if tree.value.shape != (count, 1, len(classes)):
        raise ModelCodecError("tree leaf values have the wrong shape")


# --- softmax regression --------------------------------------------------------------------------------

# Upper bound on a decoded softmax model's input width (MNIST has 784), so a header cannot demand huge arrays.
MAX_FEATURES = 1_000_000


@dataclass(frozen=True)
class SoftmaxModel:
    """A linear classifier: class scores weight @ x + bias, probabilities their softmax."""

    weight: NDArray[np.float32]  # (n_classes, n_features)
    bias: NDArray[np.float32]  # (n_classes,)

    @property
    def n_classes(self) -> int:
        """The task's class count."""
        return int(self.weight.shape[0])


class SoftmaxFamily:
    """Softmax regression (protocols.md 6's Tier A base model): mini-batch SGD on cross-entropy from zero weights,
    the batch order drawn from the fit's seed, on one CPU thread so that miners on a shared machine do not contend."""

    name: str = "softmax"

    def __init__(self, epochs: int = 5, batch_size: int = 32, lr: float = 0.1, weight_decay: float = 0.0) -> None:
        for key, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"softmax {key} must be an integer >= 1, got {value!r}")
        for key, number in (("lr", lr), ("weight_decay", weight_decay)):
            if isinstance(number, bool) or not isinstance(number, int | float) or not np.isfinite(number):
                raise ValueError(f"softmax {key} must be a number, got {number!r}")
        if lr <= 0 or weight_decay < 0:
            raise ValueError(f"softmax needs lr > 0 and weight_decay >= 0, got {lr!r}, {weight_decay!r}")
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, float(lr), float(weight_decay)

    def fit(
        self, X: NDArray[np.float32], y: NDArray[np.int64], n_classes: int, shape: tuple[int, ...], seed: int
    ) -> SoftmaxModel:
        """Train from zero weights; the same data and seed give the same bytes (one thread, fixed batch order)."""
        import torch

        check_labels(y, n_classes)
        if len(y) == 0:
            raise ValueError("cannot train on an empty dataset")
        inputs = torch.tensor(X.reshape(len(X), -1), dtype=torch.float32)
        targets = torch.tensor(y, dtype=torch.int64)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            linear = torch.nn.Linear(inputs.shape[1], n_classes)
            torch.nn.init.zeros_(linear.weight)
            torch.nn.init.zeros_(linear.bias)
            optimizer = torch.optim.SGD(linear.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            order_rng = torch.Generator().manual_seed(seed)
            loss_fn = torch.nn.CrossEntropyLoss()
            for _ in range(self.epochs):
                order = torch.randperm(len(targets), generator=order_rng)
                for start in range(0, len(order), self.batch_size):
                    batch = order[start : start + self.batch_size]
                    optimizer.zero_grad(set_to_none=True)
                    loss_fn(linear(inputs[batch]), targets[batch]).backward()
                    optimizer.step()
            weight = linear.weight.detach().numpy().astype(np.float32)
            bias = linear.bias.detach().numpy().astype(np.float32)
        finally:
            torch.set_num_threads(threads)
        return SoftmaxModel(weight, bias)

    def predict_proba(self, model: SoftmaxModel, X: NDArray[np.float32]) -> NDArray[np.float32]:
        """Softmax of the class scores, in numpy (no torch needed to serve predictions)."""
        flat = X.reshape(len(X), -1).astype(np.float32, copy=False)
        if flat.shape[1] != model.weight.shape[1]:
            raise ValueError(f"expected {model.weight.shape[1]} features, got {flat.shape[1]}")
        scores = flat @ model.weight.T + model.bias
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        out: NDArray[np.float32] = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        return out

    def encode(self, model: SoftmaxModel) -> bytes:
        """weight and bias as safetensors float32 arrays; never pickle."""
        meta = {"family": self.name, "format": 1, "n_classes": model.n_classes}
        return encode_arrays({"weight": model.weight, "bias": model.bias}, meta)

    def decode(self, data: bytes) -> SoftmaxModel:
        """The model from encode()'s bytes; ModelCodecError on wrong shapes or values that are not finite."""
        arrays, meta = decode_arrays(data, {"weight": "F32", "bias": "F32"})
        n_classes = check_meta_classes(meta, self.name)
        weight, bias = arrays["weight"], arrays["bias"]
        if weight.ndim != 2 or weight.shape[0] != n_classes or not 1 <= weight.shape[1] <= MAX_FEATURES:
            raise ModelCodecError("softmax weight has the wrong shape")
        if bias.shape != (n_classes,):
            raise ModelCodecError("softmax bias has the wrong shape")
        if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))):
            raise ModelCodecError("softmax weights must be finite")
        return SoftmaxModel(weight, bias)


# --- registry ------------------------------------------------------------------------------------------


def make_family(name: str, params: Mapping[str, Any]) -> ModelFamily:
    """Build the model family called `name` with its hyper-parameters."""
    if name == "decision_tree":
        return DecisionTreeFamily(**params)
    if name == "softmax":
        try:
            return SoftmaxFamily(**params)
        except TypeError as exc:
            raise ValueError(f"bad softmax parameters: {exc}") from exc
    if name == "lenet5":
        from chainlab.learning.lenet import LeNet5Family

        try:
            return LeNet5Family(**params)
        except TypeError as exc:
            raise ValueError(f"bad lenet5 parameters: {exc}") from exc
    raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")


def __getattr__(name: str) -> Any:
    """Resolve LeNet5Family on first use (see the module docstring)."""
    if name == "LeNet5Family":
        from chainlab.learning.lenet import LeNet5Family

        return LeNet5Family
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
