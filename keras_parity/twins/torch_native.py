"""Native PyTorch twins of the built-in models: torch.nn modules as a team porting the Keras
models would write them, in PyTorch's layouts (channels first, (out, in) weights), with the
Keras weights ported in (keras_parity/twins/port.py). Inputs and outputs stay in Keras's
layout (channels last) at the boundary, so the same goldens judge them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from keras_parity.twins import port


def _same(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """Keras 'same' padding, explicit: F.pad takes (before, after) pairs from the last axis."""
    pads = [p for size in reversed(x.shape[2:]) for p in port.same_pads(size, k, stride)]
    return F.pad(x, pads)


class DenseNoBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(5, 3, bias=False)

    def forward(self, x):
        return self.dense(x)


class SigmoidMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Linear(5, 10), nn.Linear(10, 1)

    def forward(self, x):
        return self.out(torch.sigmoid(self.hidden(x)))


class ScaleLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.empty(6))

    def forward(self, x):
        return x * self.scale


class BranchSelect(nn.Module):
    """The conditional layer: a Python if on the flag's mean (torch runs eagerly)."""

    def __init__(self):
        super().__init__()
        self.branch_a, self.branch_b = nn.Linear(5, 3), nn.Linear(5, 3)

    def forward(self, x, flag):
        return self.branch_a(x) if flag.mean() > 0.5 else self.branch_b(x)


class Conv2dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_s1 = nn.Conv2d(3, 4, 3)
        self.conv_s2 = nn.Conv2d(4, 6, 3, stride=2)
        self.head = nn.Linear(96, 3)

    def forward(self, x):
        h = x.permute(0, 3, 1, 2)  # NHWC -> NCHW
        h = F.relu(self.conv_s1(_same(h, 3, 1)))
        h = F.relu(self.conv_s2(_same(h, 3, 2)))
        # Keras flattens (H, W, C); the head's kernel rows are in that order.
        return self.head(torch.flatten(h.permute(0, 2, 3, 1), 1))


class Conv1dNet(nn.Module):
    def __init__(self, padding: str):
        super().__init__()
        self.padding, self.conv = padding, nn.Conv1d(2, 4, 3)

    def forward(self, x):
        h = x.permute(0, 2, 1)  # NLC -> NCL
        h = self.conv(_same(h, 3, 1) if self.padding == "same" else h)
        return h.permute(0, 2, 1)


class BNMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense_in, self.dense_out = nn.Linear(8, 16), nn.Linear(16, 4)
        self.bn = nn.BatchNorm1d(16, **port.bn_options(epsilon=1e-3, momentum=0.99))

    def forward(self, x):
        return self.dense_out(F.relu(_batch_norm(self.bn, self.dense_in(x))))


def _batch_norm(bn: nn.BatchNorm1d | nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """torch's BatchNorm in training normalizes with the biased batch variance, as Keras does,
    but moves running_var towards the unbiased one (n / (n - 1) larger); Keras moves its
    moving_variance towards the biased one. So the statistics are updated here, Keras's way."""
    if not bn.training:
        return bn(x)
    axes = [0, *range(2, x.ndim)]
    mean, var = x.mean(axes), x.var(axes, unbiased=False)
    with torch.no_grad():
        bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean)
        bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * var)
    return F.batch_norm(x, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.out = nn.LSTM(1, 10, batch_first=True), nn.Linear(10, 1)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.out(h[-1])


class ResNet50(nn.Module):
    """Keras's ResNet50 (v1): the stride of a stage's first block is on its 1x1 convolutions,
    not on the 3x3 as in torchvision's v1.5; BatchNormalization epsilon 1.001e-5."""

    STAGES = (("conv2", 64, 3, 1), ("conv3", 128, 4, 2), ("conv4", 256, 6, 2), ("conv5", 512, 3, 2))

    def __init__(self):
        super().__init__()
        self._add("conv1", 3, 64, 7, stride=2)
        cin, self.blocks = 64, []
        for stage, f, n, stride in self.STAGES:
            for i in range(1, n + 1):
                name = f"{stage}_block{i}"
                s = stride if i == 1 else 1
                if i == 1:
                    self._add(f"{name}_0", cin, 4 * f, 1, stride=s)
                self._add(f"{name}_1", cin, f, 1, stride=s)
                self._add(f"{name}_2", f, f, 3)
                self._add(f"{name}_3", f, 4 * f, 1)
                self.blocks.append((name, i == 1))
                cin = 4 * f
        self.predictions = nn.Linear(2048, 1000)

    def _add(self, name, cin, cout, k, stride=1):
        setattr(self, f"{name}_conv", nn.Conv2d(cin, cout, k, stride=stride))
        setattr(self, f"{name}_bn", nn.BatchNorm2d(cout, **port.bn_options(epsilon=1.001e-5, momentum=0.99)))

    def _cbn(self, name, x):
        return _batch_norm(getattr(self, f"{name}_bn"), getattr(self, f"{name}_conv")(x))

    def forward(self, x):
        h = F.pad(x.permute(0, 3, 1, 2), (3, 3, 3, 3))  # conv1_pad
        h = F.relu(self._cbn("conv1", h))
        h = F.max_pool2d(F.pad(h, (1, 1, 1, 1)), 3, stride=2)  # pool1_pad (zeros, after a ReLU)
        for name, first in self.blocks:
            short = self._cbn(f"{name}_0", h) if first else h
            y = F.relu(self._cbn(f"{name}_1", h))
            y = F.relu(self._cbn(f"{name}_2", _same(y, 3, 1)))
            h = F.relu(short + self._cbn(f"{name}_3", y))
        return self.predictions(h.mean((2, 3)))


TWINS: dict[str, Callable[[], nn.Module]] = {
    "dense_nobias": DenseNoBias,
    "sigmoid_mlp": SigmoidMLP,
    "scale_layer": ScaleLayer,
    "branch_select": BranchSelect,
    "conv2d": Conv2dNet,
    "conv1d_same": lambda: Conv1dNet("same"),
    "conv1d_valid": lambda: Conv1dNet("valid"),
    "bn_mlp": BNMLP,
    "lstm": LSTMNet,
    "resnet50": ResNet50,
}
# Keras layer paths of the modules whose names differ from the Keras layer's.
KERAS_NAMES = {"branch_a": "select/branch_a", "branch_b": "select/branch_b", "lstm": "lstm/lstm_cell"}


def state_dict(module: nn.Module, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The module's parameters and buffers, ported from Keras's variable paths."""
    out = {}
    for name, sub in module.named_modules():
        keras = KERAS_NAMES.get(name, name)
        if isinstance(sub, nn.Linear):
            out[f"{name}.weight"] = port.dense_to_torch(weights[f"{keras}/kernel"])
            if sub.bias is not None:
                out[f"{name}.bias"] = weights[f"{keras}/bias"]
        elif isinstance(sub, (nn.Conv1d, nn.Conv2d)):
            out[f"{name}.weight"] = port.conv_to_torch(weights[f"{keras}/kernel"])
            out[f"{name}.bias"] = weights[f"{keras}/bias"]
        elif isinstance(sub, (nn.BatchNorm1d, nn.BatchNorm2d)):
            stats = ("gamma", "beta", "moving_mean", "moving_variance")
            ported = port.bn_to_torch(*(weights[f"{keras}/{s}"] for s in stats))
            out.update({f"{name}.{k}": v for k, v in ported.items()})
            out[f"{name}.num_batches_tracked"] = np.array(0)
        elif isinstance(sub, nn.LSTM):
            args = (weights[f"{keras}/{s}"] for s in ("kernel", "recurrent_kernel", "bias"))
            out.update({f"{name}.{k}": v for k, v in port.lstm_to_torch(*args).items()})
    if isinstance(module, ScaleLayer):
        out["scale"] = weights["scale/scale"]
    return out


def build(builder: str, weights: dict[str, np.ndarray]) -> nn.Module:
    module = TWINS[builder]()
    sd = {k: torch.from_numpy(np.asarray(v)) for k, v in state_dict(module, weights).items()}
    module.load_state_dict(sd, strict=True)
    return module


def run(module: nn.Module, mode: str, inputs: dict[str, np.ndarray], bn_paths: list[str]) -> dict[str, np.ndarray]:
    """One forward case: 'infer' (eval mode), 'train' (training-mode call) or 'moving_stats'
    (the BatchNormalization statistics after one training-mode call, by Keras path)."""
    module.train(mode != "infer")
    xs = [torch.from_numpy(v) for v in inputs.values()]
    with torch.no_grad():
        y = module(*xs)
    if mode != "moving_stats":
        return {"output": y.numpy()}
    out = {}
    for path in bn_paths:  # '<layer>/moving_mean' -> the module's running_mean
        layer, stat = path.rsplit("/", 1)
        bn = module.get_submodule(layer)
        out[path] = (bn.running_mean if stat == "moving_mean" else bn.running_var).numpy().copy()
    return out
