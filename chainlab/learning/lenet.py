"""LeNet-5 in PyTorch as a model family: seeded training, batched inference, safetensors encoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from chainlab.learning.codec import ModelCodecError, decode_safetensors, encode_safetensors
from chainlab.learning.models import check_labels, check_meta_classes

# (channels, height, width) inputs LeNet-5 is defined for here: MNIST-like and CIFAR/SVHN-like images.
SUPPORTED_SHAPES = frozenset({(1, 28, 28), (3, 28, 28), (1, 32, 32), (3, 32, 32)})
_PREDICT_BATCH = 2048


class LeNet5(nn.Module):
    """LeNet-5's layer sizes (6 and 16 5x5 convolutions, 120-84-n dense), with ReLU and max-pooling.

    28x28 inputs are zero-padded by 2 in the first convolution, as in the original 32x32 design.
    """

    def __init__(self, in_channels: int, size: int, n_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=(32 - size) // 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of (N, C, H, W) images."""
        logits: torch.Tensor = self.classifier(self.features(x))
        return logits


@dataclass(frozen=True)
class LeNetModel:
    """A trained network (in eval mode, on the family's device) with its input shape and class count."""

    net: LeNet5
    shape: tuple[int, int, int]
    n_classes: int


class LeNet5Family:
    """LeNet-5 trained with Adam and cross-entropy; CUDA when available, deterministic per seed on CPU."""

    name: str = "lenet5"

    def __init__(self, epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, device: str | None = None) -> None:
        if epochs < 1 or batch_size < 1 or lr <= 0:
            raise ValueError("epochs and batch_size must be positive, lr > 0")
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def fit(
        self, X: NDArray[np.float32], y: NDArray[np.int64], n_classes: int, shape: tuple[int, ...], seed: int
    ) -> LeNetModel:
        """Train from a seed-determined initialisation and mini-batch order."""
        image_shape = _image_shape(shape)
        check_labels(y, n_classes)
        if len(y) == 0:
            raise ValueError("cannot train on an empty dataset")
        on_cuda = self.device.type == "cuda"
        cuda_devices = [self.device.index or torch.cuda.current_device()] if on_cuda else []
        # Seed inside a forked RNG state so fitting neither depends on nor disturbs the caller's torch RNG.
        with torch.random.fork_rng(devices=cuda_devices):
            torch.manual_seed(seed)
            net = LeNet5(image_shape[0], image_shape[1], n_classes).to(self.device)
            order_rng = torch.Generator().manual_seed(seed)
            # Copies: Dataset arrays are read-only, and the whole set fits on the device for fast batching.
            inputs = torch.tensor(X, dtype=torch.float32).reshape(-1, *image_shape).to(self.device)
            targets = torch.tensor(y, dtype=torch.int64).to(self.device)
            optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
            loss_fn = nn.CrossEntropyLoss()
            net.train()
            for _ in range(self.epochs):
                order = torch.randperm(len(targets), generator=order_rng).to(self.device)
                for start in range(0, len(order), self.batch_size):
                    batch = order[start : start + self.batch_size]
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(net(inputs[batch]), targets[batch])
                    loss.backward()
                    optimizer.step()
        net.eval()
        return LeNetModel(net, image_shape, n_classes)

    def predict_proba(self, model: LeNetModel, X: NDArray[np.float32]) -> NDArray[np.float32]:
        """Softmax outputs, computed in batches on the model's device."""
        out = np.empty((len(X), model.n_classes), dtype=np.float32)
        device = next(model.net.parameters()).device
        with torch.inference_mode():
            for start in range(0, len(X), _PREDICT_BATCH):
                chunk = torch.tensor(X[start : start + _PREDICT_BATCH], dtype=torch.float32)
                logits = model.net(chunk.reshape(-1, *model.shape).to(device))
                out[start : start + len(chunk)] = torch.softmax(logits, dim=1).cpu().numpy()
        return out

    def encode(self, model: LeNetModel) -> bytes:
        """safetensors state dict; input shape and class count go in the header metadata."""
        meta: dict[str, Any] = {
            "family": self.name,
            "format": 1,
            "shape": list(model.shape),
            "n_classes": model.n_classes,
        }
        return encode_safetensors(model.net.state_dict(), meta)

    def decode(self, data: bytes) -> LeNetModel:
        """Rebuild the network from its header and load the tensors, which must match it exactly."""
        tensors, meta = decode_safetensors(data)
        n_classes = check_meta_classes(meta, self.name)
        raw_shape = meta.get("shape")
        if not isinstance(raw_shape, list) or tuple(raw_shape) not in SUPPORTED_SHAPES:
            raise ModelCodecError(f"unsupported LeNet-5 input shape {raw_shape!r}")
        c, h, w = (int(s) for s in raw_shape)
        net = LeNet5(c, h, n_classes)
        expected = {name: tuple(t.shape) for name, t in net.state_dict().items()}
        if {name: tuple(t.shape) for name, t in tensors.items()} != expected:
            raise ModelCodecError("tensors do not match the LeNet-5 architecture")
        net.load_state_dict(tensors, strict=True)
        net.eval()
        return LeNetModel(net.to(self.device), (c, h, w), n_classes)


def _image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3 or tuple(shape) not in SUPPORTED_SHAPES:
        raise ValueError(f"LeNet-5 needs a (C, 28|32, 28|32) input with C in (1, 3), got {shape}")
    return (int(shape[0]), int(shape[1]), int(shape[2]))
