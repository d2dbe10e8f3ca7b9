"""Model families behind one interface: fit, class probabilities, and a safe byte encoding.

Families in this module: "decision_tree" (scikit-learn). "lenet5" (PyTorch) lives in `lenet.py` and is
imported only when asked for, so processes that never touch a CNN do not pay for importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from chainlab.learning.codec import ModelCodecError, decode_skops, encode_skops

if TYPE_CHECKING:
    from sklearn.tree import DecisionTreeClassifier

    from chainlab.learning.lenet import LeNet5Family

__all__ = [
    "FAMILIES",
    "DecisionTreeFamily",
    "LeNet5Family",
    "ModelCodecError",
    "ModelFamily",
    "TreeModel",
    "check_labels",
    "make_family",
]

FAMILIES = ("decision_tree", "lenet5")

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


# What a DecisionTreeClassifier's skops schema consists of (collected from trees fitted with every kind of
# hyper-parameter value); any other type in an archive is refused before skops loads it.
_TREE_TYPES = frozenset(
    {
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("builtins", "str"),
        ("builtins", "int"),
        ("builtins", "float"),
        ("builtins", "bool"),
        ("numpy", "ndarray"),
        ("numpy", "int64"),
        ("numpy", "float64"),
        ("sklearn.tree._classes", "DecisionTreeClassifier"),
        ("sklearn.tree._tree", "Tree"),
    }
)
_TREE_LOADERS = frozenset(
    {"ObjectNode", "DictNode", "ListNode", "TupleNode", "JsonNode", "TypeNode", "NdArrayNode", "TreeNode"}
)
# skops trusts the estimator itself by default; the Cython Tree is the one type it asks about.
_TREE_TRUSTED = frozenset({"sklearn.tree._tree.Tree"})


class DecisionTreeFamily:
    """scikit-learn's DecisionTreeClassifier, seeded per fit, encoded with skops."""

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
        """Canonical skops archive of the tree with the class count in its metadata."""
        return encode_skops(model.estimator, {"family": self.name, "format": 1, "n_classes": model.n_classes})

    def decode(self, data: bytes) -> TreeModel:
        """Load and structurally validate a tree archive."""
        from sklearn.tree import DecisionTreeClassifier

        estimator, meta = decode_skops(
            data,
            allowed_types=_TREE_TYPES,
            allowed_loaders=_TREE_LOADERS,
            trusted=_TREE_TRUSTED,
            expected=DecisionTreeClassifier,
        )
        n_classes = check_meta_classes(meta, self.name)
        try:
            _validate_tree(estimator, n_classes)
        except ModelCodecError:
            raise
        except Exception as exc:
            raise ModelCodecError(f"malformed decision tree: {exc}") from exc
        return TreeModel(estimator, n_classes)


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


# --- registry ------------------------------------------------------------------------------------------


def make_family(name: str, params: Mapping[str, Any]) -> ModelFamily:
    """Build the model family called `name` with its hyper-parameters."""
    if name == "decision_tree":
        return DecisionTreeFamily(**params)
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
