"""Models as weights for the federated protocols: initialise, SGD steps on sampled batches, evaluate, combine.

Weights travel as safetensors state dicts (float32 only, finite only); decoding checks every tensor's name and
shape against the architecture the spec names, so a peer's bytes either become this exact network or are refused
with ModelCodecError. Families: "softmax" (softmax regression), "mlp" (one hidden ReLU layer), "lenet5" (the
classic 61k-parameter LeNet-5 of lenet.py) and "caffe_lenet" (Caffe's 431k-parameter MNIST LeNet, seed 001's).
Training is plain SGD with optional weight decay and Caffe's "inv" learning-rate policy; the same inputs and seed
give the same bytes on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from chainlab.learning.codec import ModelCodecError, decode_safetensors, encode_safetensors
from chainlab.learning.datasets import Dataset
from chainlab.learning.lenet import SUPPORTED_SHAPES, LeNet5

FAMILIES = ("softmax", "mlp", "lenet5", "caffe_lenet")
LR_POLICIES = ("fixed", "inv")
INITS = ("torch", "xavier")
_EVAL_BATCH = 4096
_MAX_DATASETS = 64  # tensors kept per Federated: every shard and test set a node or a summary uses


@dataclass(frozen=True)
class NetSpec:
    """A federated model: family, input shape, class count and the SGD recipe (Caffe's solver names)."""

    family: str
    input: tuple[int, ...]
    classes: int
    lr: float = 0.1
    weight_decay: float = 0.0
    lr_policy: str = "fixed"
    gamma: float = 1e-4
    power: float = 0.75
    hidden: int = 64
    init: str = "torch"  # torch: PyTorch's default initialisation; xavier: Caffe's xavier weights, zero biases

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown federated model family {self.family!r}; known: {', '.join(FAMILIES)}")
        if self.classes < 2 or not self.input or any(s < 1 for s in self.input):
            raise ValueError(f"bad input shape {self.input} or class count {self.classes}")
        if self.family in ("lenet5", "caffe_lenet") and tuple(self.input) not in SUPPORTED_SHAPES:
            raise ValueError(f"LeNet-5 needs a (C, 28|32, 28|32) input, got {self.input}")
        if not self.lr > 0 or self.weight_decay < 0 or self.gamma < 0 or self.power < 0 or self.hidden < 1:
            raise ValueError("need lr > 0, weight_decay, gamma, power >= 0 and hidden >= 1")
        if self.lr_policy not in LR_POLICIES:
            raise ValueError(f"lr_policy must be one of {LR_POLICIES}, got {self.lr_policy!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")

    @classmethod
    def of(cls, family: str, params: Mapping[str, Any]) -> NetSpec:
        """From a ModelSpec's family and params, naming unknown parameters."""
        known = {f.name for f in fields(cls)} - {"family"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown {family} parameter(s): {', '.join(unknown)}; known: {sorted(known)}")
        values = dict(params)
        if "input" in values:
            values["input"] = tuple(int(s) for s in values["input"])
        return cls(family=family, **values)

    def lr_at(self, iteration: int) -> float:
        """The learning rate of step `iteration` (Caffe: inv is lr * (1 + gamma * iter) ^ -power)."""
        if self.lr_policy == "inv":
            return self.lr * float((1.0 + self.gamma * iteration) ** -self.power)
        return self.lr

    def build(self) -> nn.Module:
        """A freshly initialised network, under the caller's RNG."""
        features = math.prod(self.input)
        net: nn.Module
        if self.family == "softmax":
            net = nn.Sequential(nn.Flatten(), nn.Linear(features, self.classes))
        elif self.family == "mlp":
            net = nn.Sequential(
                nn.Flatten(), nn.Linear(features, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.classes)
            )
        elif self.family == "caffe_lenet":
            net = caffe_lenet(self.input, self.classes)
        else:
            net = LeNet5(self.input[0], self.input[1], self.classes)
        if self.init == "xavier":
            # Seed 001's Caffe solver: a LeNet under torch's default init sits at chance for ~100 SGD steps, under
            # xavier it reaches 60 % in 30 (measured), which is what the paper's first 30 s show.
            for layer in net.modules():
                if isinstance(layer, nn.Conv2d | nn.Linear):
                    nn.init.xavier_uniform_(layer.weight)
                    if layer.bias is not None:
                        nn.init.zeros_(layer.bias)
        return net


def caffe_lenet(shape: tuple[int, ...], classes: int) -> nn.Module:
    """Caffe's MNIST LeNet (seed 001's model, 431k parameters on 28x28): conv 20@5x5, max-pool 2, conv 50@5x5,
    max-pool 2, fully connected 500, ReLU, fully connected; no ReLU after the convolutions."""
    side = (((shape[1] - 4) // 2) - 4) // 2
    return nn.Sequential(
        nn.Conv2d(shape[0], 20, kernel_size=5),
        nn.MaxPool2d(2),
        nn.Conv2d(20, 50, kernel_size=5),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(50 * side * side, 500),
        nn.ReLU(),
        nn.Linear(500, classes),
    )


class Federated:
    """The weight-space operations, with one reusable network per spec (so a job loads weights, not builds).

    Training and evaluation run on `device` (default: CUDA where present, else the CPU); weights always travel
    as CPU bytes. Not thread-safe: use one per thread (each Worker owns one).
    """

    def __init__(self, device: str | None = None) -> None:
        # One thread per process: a 64-sample SGD step is several times slower with two contending threads, and
        # independent runs or nodes then use the other cores (seed 001's reproduction note).
        torch.set_num_threads(1)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._nets: dict[NetSpec, nn.Module] = {}
        self._shapes: dict[NetSpec, dict[str, tuple[int, ...]]] = {}
        self._data: dict[int, tuple[Dataset, torch.Tensor, torch.Tensor]] = {}

    def init(self, spec: NetSpec, seed: int) -> bytes:
        """Fresh weights from seed."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _encode(spec, spec.build())

    def train_steps(
        self, spec: NetSpec, weights: bytes, data: Dataset, steps: int, batch_size: int, seed: int, iteration: int
    ) -> bytes:
        """`steps` SGD steps, each on batch_size samples of data drawn with replacement with seed."""
        if steps < 0 or batch_size < 1 or iteration < 0:
            raise ValueError("need steps >= 0, batch_size >= 1 and iteration >= 0")
        if len(data) == 0:
            raise ValueError("cannot train on an empty dataset")
        net = self._load(spec, weights)
        picks = np.random.default_rng(seed).integers(len(data), size=(steps, batch_size))
        inputs, targets = self._as_tensors(data)
        inputs = inputs.reshape(-1, *spec.input)
        loss_fn = nn.CrossEntropyLoss()
        net.train()
        for step, batch in enumerate(picks):
            index = torch.from_numpy(batch).to(self.device)
            net.zero_grad(set_to_none=True)
            loss_fn(net(inputs[index]), targets[index]).backward()
            lr = spec.lr_at(iteration + step)
            with torch.no_grad():
                for p in net.parameters():
                    if p.grad is None:
                        continue
                    grad = p.grad if spec.weight_decay == 0 else p.grad + spec.weight_decay * p
                    p.sub_(lr * grad)
        net.eval()
        return _encode(spec, net)

    def evaluate(self, spec: NetSpec, weights: bytes, data: Dataset, samples: int = 0, seed: int = 0) -> float:
        """Accuracy on data, or on `samples` of it drawn without replacement with seed (0: all of it)."""
        net = self._load(spec, weights)
        X, y = self._as_tensors(data)
        if 0 < samples < len(data):
            picks = np.random.default_rng(seed).choice(len(data), size=samples, replace=False)
            idx = torch.from_numpy(picks).to(self.device)
            X, y = X[idx], y[idx]
        if len(y) == 0:
            raise ValueError("cannot evaluate on an empty dataset")
        correct = 0
        with torch.inference_mode():
            for start in range(0, len(y), _EVAL_BATCH):
                predicted = net(X[start : start + _EVAL_BATCH].reshape(-1, *spec.input)).argmax(dim=1)
                correct += int((predicted == y[start : start + _EVAL_BATCH]).sum())
        return correct / len(y)

    def aggregate(self, spec: NetSpec, models: Sequence[bytes], coefficients: Sequence[float], rule: str) -> bytes:
        """ "weighted": sum_i coefficients[i] * models[i]; "median": the coordinate-wise median."""
        if not models:
            raise ValueError("nothing to aggregate")
        states = [self._tensors(spec, m) for m in models]
        if rule == "weighted":
            if len(coefficients) != len(models) or not all(math.isfinite(c) for c in coefficients):
                raise ValueError("one finite coefficient per model is needed")
            combined = {
                name: sum((c * s[name] for c, s in zip(coefficients, states, strict=True)), torch.zeros_like(t))
                for name, t in states[0].items()
            }
        elif rule == "median":
            # torch.median picks the lower middle value; the mean of the two middles is the textbook median.
            combined = {name: torch.quantile(torch.stack([s[name] for s in states]), 0.5, dim=0) for name in states[0]}
        else:
            raise ValueError(f"unknown aggregation rule {rule!r}")
        return _encode_tensors(spec, combined)

    def perturb(self, spec: NetSpec, weights: bytes, kind: str, scale: float, seed: int) -> bytes:
        """ "uniform": every weight replaced by U(0, scale); "gaussian": N(0, scale^2) added to every weight."""
        state = self._tensors(spec, weights)
        generator = torch.Generator().manual_seed(seed)
        if kind == "uniform":
            out = {n: torch.rand(t.shape, generator=generator) * scale for n, t in state.items()}
        elif kind == "gaussian":
            out = {n: t + torch.randn(t.shape, generator=generator) * scale for n, t in state.items()}
        else:
            raise ValueError(f"unknown perturbation {kind!r}")
        return _encode_tensors(spec, out)

    def _as_tensors(self, data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """data's arrays as tensors, converted once per dataset (a shard is trained on every few rounds)."""
        held = self._data.get(id(data))
        if held is None or held[0] is not data:
            if len(self._data) >= _MAX_DATASETS:
                self._data.pop(next(iter(self._data)))
            # Dataset arrays are read-only; torch wants writable memory, so this is the one copy.
            held = (data, torch.tensor(data.X).to(self.device), torch.tensor(data.y).to(self.device))
            self._data[id(data)] = held
        return held[1], held[2]

    # --- decoding ------------------------------------------------------------------------------------

    def _tensors(self, spec: NetSpec, data: bytes) -> dict[str, torch.Tensor]:
        """The weights as tensors, checked against spec's architecture and for finiteness."""
        tensors, meta = decode_safetensors(data)
        if meta.get("family") != spec.family or meta.get("format") != 1:
            raise ModelCodecError(f"not {spec.family} weights")
        shapes = self._shapes.get(spec)
        if shapes is None:
            shapes = self._shapes[spec] = {n: tuple(t.shape) for n, t in self._net(spec).state_dict().items()}
        if {n: tuple(t.shape) for n, t in tensors.items()} != shapes:
            raise ModelCodecError(f"tensors do not match the {spec.family} architecture")
        if not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
            raise ModelCodecError("weights are not all finite")
        # In the architecture's order: safetensors hands tensors back in an order that differs between processes, and
        # a seeded draw over them (perturb) must give every process the same weights.
        return {name: tensors[name] for name in shapes}

    def _net(self, spec: NetSpec) -> nn.Module:
        net = self._nets.get(spec)
        if net is None:
            with torch.random.fork_rng(devices=[]):
                net = self._nets[spec] = spec.build().to(self.device)
        return net

    def _load(self, spec: NetSpec, data: bytes) -> nn.Module:
        tensors = self._tensors(spec, data)
        net = self._net(spec)
        net.load_state_dict(tensors, strict=True)
        net.eval()
        return net


def _encode(spec: NetSpec, net: nn.Module) -> bytes:
    return _encode_tensors(spec, dict(net.state_dict()))


def _encode_tensors(spec: NetSpec, tensors: Mapping[str, torch.Tensor]) -> bytes:
    return encode_safetensors(tensors, {"family": spec.family, "format": 1})
