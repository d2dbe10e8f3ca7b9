"""Why M3's gain is about +2 pp (protocols.md 4.5): the on-chain model's additions replayed off chain, without the
chain or the economics, on the DRT experiment's own data (its split, the owner's initial share, the good and the bad
agent's streams) for the model and initial-data variants the papers state.

The replay adds the good agent's samples in stream order and, with an attacker, one flipped sample of the bad
agent's stream after every six good ones (their attempt rates, 10 min and 1 h), for the whole run: a worst case,
since the bad agent of the simulated run stops once its balance is gone. The no-attacker replay of the integer
model is the simulated control run sample for sample, but for the good agent's rare label mistakes (1e-4), so its
final accuracy is that run's to within a few test samples.

    python -m chainlab.scenarios.datamarket.m3 [--seeds 1 2 3] [--out runs/datamarket/m3_variants.json]
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from chainlab.learning import market_data
from chainlab.learning.datasets import Dataset
from chainlab.protocols.datamarket import perceptron
from chainlab.scenarios.datamarket.settings import MarketSettings
from chainlab.scenarios.datamarket.spec import market_data_of
from chainlab.scenarios.experiment import Experiment, load_experiment

DRT = Path("experiments/datamarket_drt.yaml")
GOOD_PER_BAD = 6  # the good agent tries every 10 minutes, the bad one every hour

Stream = list[tuple[bytes, int]]


def _stream(good: Stream, bad: Stream, attacked: bool) -> Stream:
    """The additions in chain order: good ones, and one flipped bad one after every GOOD_PER_BAD of them."""
    if not attacked:
        return list(good)
    out: Stream = []
    flipped = iter([(x, 1 - y) for x, y in bad])
    for i, sample in enumerate(good):
        out.append(sample)
        if (i + 1) % GOOD_PER_BAD == 0 and (extra := next(flipped, None)) is not None:
            out.append(extra)
    return out


def _integer(initial: Stream, stream: Stream, epochs: int, averaged: bool, test: Dataset) -> tuple[float, float]:
    """(initial, final) accuracy of the contract's integer perceptron (or its last iterate, not averaged)."""
    model = perceptron.fit(len(test.X[0]), initial, epochs)
    assert isinstance(model, perceptron.Perceptron)

    def accuracy() -> float:
        weights = model.averaged() if averaged else list(model.w)
        return market_data.perceptron_accuracy(perceptron.encode_weights(weights), test)

    first = accuracy()
    for x, y in stream:
        model.update(x, y)
    return first, accuracy()


def _sklearn(initial: Dataset, stream: Stream, test: Dataset, seed: int) -> tuple[float, float]:
    """(initial, final) accuracy of DRT's own model: SGDClassifier(loss="perceptron", learning_rate="optimal",
    penalty=None), fit on the initial data, then partial_fit on each addition."""
    from sklearn.linear_model import SGDClassifier

    model = SGDClassifier(loss="perceptron", learning_rate="optimal", penalty=None, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning at max_iter is DRT's setting too
        model.fit(initial.X, initial.y)
    first = float(model.score(test.X, test.y))
    features = len(test.X[0])
    classes = np.array([0, 1])
    for x, y in stream:
        row = np.unpackbits(np.frombuffer(x, dtype=np.uint8))[:features].astype(np.float32)[None, :]
        model.partial_fit(row, np.array([y]), classes=classes)
    return first, float(model.score(test.X, test.y))


def replay(exp: Experiment) -> dict[str, dict[str, float]]:
    """Every variant's (initial, final, gain) with and without the attacker, for one seed of the DRT experiment."""
    settings = MarketSettings.of(exp)
    initial, test, _, streams = market_data_of(exp, settings)
    good, bad = market_data.samples(streams[0]), market_data.samples(streams[1])
    first = market_data.samples(initial)
    rng = np.random.default_rng([exp.seed, 0x4D33])  # "M3"
    order = rng.permutation(len(initial))

    def part(share: float) -> Stream:
        """A smaller owner: `share` of the training set, drawn from the owner's 8 % (the streams stay the same)."""
        return [first[i] for i in order[: round(share / settings.initial * len(first))]]

    variants: dict[str, Callable[[Stream], tuple[float, float]]] = {
        "integer averaged, 8 %, 3 epochs (the runs)": lambda s: _integer(first, s, 3, True, test),
        "integer averaged, 8 %, 1 epoch": lambda s: _integer(first, s, 1, True, test),
        "integer averaged, 2 %, 1 epoch": lambda s: _integer(part(0.02), s, 1, True, test),
        "integer averaged, 0.5 %, 1 epoch": lambda s: _integer(part(0.005), s, 1, True, test),
        "integer last iterate, 8 %, 3 epochs": lambda s: _integer(first, s, 3, False, test),
        "sklearn SGDClassifier perceptron (DRT's model), 8 %": lambda s: _sklearn(initial, s, test, exp.seed),
    }
    out: dict[str, dict[str, float]] = {}
    for name, run in variants.items():
        for attacked in (False, True):
            start, end = run(_stream(good, bad, attacked))
            key = f"{name} | {'attacker throughout' if attacked else 'no attacker'}"
            out[key] = {"initial": start, "final": end, "gain_pp": 100 * (end - start)}
    every = good + bad  # the ceiling: the owner's data and every contributed sample, correctly labelled
    for epochs in (1, 3):
        model = perceptron.fit(len(test.X[0]), first + every, epochs)
        acc = market_data.perceptron_accuracy(perceptron.encode_weights(model.averaged()), test)
        out[f"ceiling: integer averaged on all the data, {epochs} epoch(s)"] = {"final": acc}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Replay every variant for the seeds and write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--config", type=Path, default=DRT)
    parser.add_argument("--out", type=Path, default=Path("runs/datamarket/m3_variants.json"))
    args = parser.parse_args(argv)
    results = {f"seed={s}": replay(load_experiment(args.config, [f"seed={s}"])) for s in args.seeds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
