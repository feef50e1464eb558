"""The training path: one fixed loss, its gradients, and N optimizer steps, in float64.

Training cases (models/registry.py, modes 'grad', 'sgd', 'adam') give these outputs:
  loss                       the loss (grad), or the loss of each step before its update
  grad/<weight path>         d loss / d weight, for every trainable weight
  grad_input/<input name>    d loss / d input
  delta/<weight path>        trainable weight after the steps minus before
  moving/<weight path>       the same for the non-trainable weights (BatchNormalization's
                             moving statistics, updated by each training-mode forward)
Arrays of more than SAMPLE_ABOVE values (ResNet50's kernels) are kept as the same SAMPLE
fixed positions on every side, under '<key>@sample'. Outputs are compared per group (the
part before the first '/'), pooled: a bias whose exact gradient is zero (a bias before a
BatchNormalization) has only rounding noise of its own, which means nothing on its own scale.

The backend side is keras_parity/run/train_step.py, the float64 reference of the same outputs
keras_parity/reference/training.py; this module, NumPy only, is what both share.
"""

from __future__ import annotations

import zlib

import numpy as np

from keras_parity import golden

TRAINING_MODES = ("grad", "sgd", "adam")
OPTIMIZER_CLASSES = {"sgd": "SGD", "adam": "Adam"}  # keras.optimizers.<class> of each step mode
GROUPS = ("loss", "grad", "grad_input", "delta", "moving")
SAMPLE_ABOVE, SAMPLE = 4096, 1024
# Options every optimizer has, left at Keras's defaults, which are these; the reference
# implements them at these values only (the EMA settings are inert while use_ema is False).
NEUTRAL = {
    "weight_decay": None,
    "clipnorm": None,
    "clipvalue": None,
    "global_clipnorm": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def _seed(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


def sample(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Large arrays -> SAMPLE fixed positions (seeded by the key, so every side picks the same)."""
    out = {}
    for key, a in outputs.items():
        a = np.atleast_1d(a)  # a scalar loss is stored as shape (1,) on every side, as .npz keeps it
        if a.size > SAMPLE_ABOVE:
            idx = np.sort(np.random.default_rng(_seed(key)).choice(a.size, SAMPLE, replace=False))
            out[golden.sampled(key)] = np.ascontiguousarray(a.reshape(-1)[idx])
        else:
            out[key] = a
    return out


def target(seed: int, builder: str, shape: tuple[int, ...], classifier: bool) -> np.ndarray:
    """The fixed target of the loss: one-hot labels for a classifier, else U(-1, 1)."""
    rng = np.random.default_rng([seed, _seed(builder, "target")])
    if classifier:
        return np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[0])]
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)
