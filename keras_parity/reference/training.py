"""Float64 reference of the training path: the loss, its gradients by autograd's reverse mode
through the float64 layers, and Keras's SGD and Adam update rules.

Outputs are keyed as keras_parity/run/training.py describes (before sampling).
"""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from keras_parity.reference.graph import evaluate as reference_eval
from keras_parity.reference.layers import UnsupportedLayer
from keras_parity.run.training import NEUTRAL


def loss_value(y, t, classifier: bool):
    """keras.losses.CategoricalCrossentropy(from_logits=True) / MeanSquaredError, both with
    'sum_over_batch_size': the mean over samples (and, for MSE, over outputs)."""
    if classifier:
        z = y - anp.max(y, axis=-1, keepdims=True)
        log_softmax = z - anp.log(anp.sum(anp.exp(z), axis=-1, keepdims=True))
        return -anp.mean(anp.sum(t * log_softmax, axis=-1))
    return anp.mean((y - t) ** 2)


# The losses loss_value implements, at these settings (their Keras defaults but from_logits).
LOSSES: dict[str, dict[str, object]] = {
    "CategoricalCrossentropy": {
        "reduction": "sum_over_batch_size",
        "from_logits": True,
        "label_smoothing": 0.0,
        "axis": -1,
    },
    "MeanSquaredError": {"reduction": "sum_over_batch_size"},
}


def check_loss(serialized: dict | None) -> None:
    """The loss Keras reports (keras.saving.serialize_keras_object) must be one loss_value
    implements, at its settings: a release that changes a loss's default is refused by name."""
    if serialized is None:
        return
    name, config = serialized.get("class_name"), serialized.get("config", {})
    if name not in LOSSES:
        raise UnsupportedLayer(f"float64 reference implements the losses {', '.join(LOSSES)} only, got {name}")
    for key, want in LOSSES[name].items():
        if config.get(key) != want:
            raise UnsupportedLayer(
                f"float64 reference implements {name} with {key}={want!r} only, got {config.get(key)!r}"
            )


def check_optimizer(kind: str, config: dict) -> None:
    want = {"sgd": "SGD", "adam": "Adam"}[kind]
    for key, neutral in NEUTRAL.items():
        if config.get(key, neutral) != neutral:
            raise UnsupportedLayer(
                f"float64 reference implements {want} with {key}={neutral!r} only, got {config[key]!r}"
            )
    if kind == "adam" and config.get("amsgrad"):
        raise UnsupportedLayer("float64 reference implements Adam with amsgrad=False only")


def _as_keras_casts(x: float, keras_casts: bool) -> float:
    """Keras's update rules take some hyperparameters through ops.cast(python_float, dtype),
    which converts the float to a float32 tensor first: a float64 model's steps carry the
    float32 rounding of SGD's momentum and of Adam's beta_1/beta_2 in the bias correction."""
    return float(np.float32(x)) if keras_casts else x


def _sgd(config, keras_casts=False):
    lr, nesterov = config["learning_rate"], config["nesterov"]
    mu = _as_keras_casts(config["momentum"], keras_casts)
    state = {}

    def step(t, key, w, g):  # keras.optimizers.SGD.update_step
        if mu == 0:
            return w - lr * g
        m = state[key] = state.get(key, 0.0) * mu - g * lr
        return w + (m * mu - g * lr if nesterov else m)

    return step


def _adam(config, keras_casts=False):
    lr, b1, b2, eps = (config[k] for k in ("learning_rate", "beta_1", "beta_2", "epsilon"))
    c1, c2 = (_as_keras_casts(b, keras_casts) for b in (b1, b2))
    state = {}

    def step(t, key, w, g):  # keras.optimizers.Adam.update_step, t counting from 1
        m, v = state.get(key, (0.0, 0.0))
        alpha = lr * np.sqrt(1 - c2**t) / (1 - c1**t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        state[key] = (m, v)
        return w - (m * alpha) / (np.sqrt(v) + eps)

    return step


def reference(
    mode: str,
    config: dict,
    weights: dict[str, np.ndarray],
    trainable: list[str],
    inputs: dict[str, np.ndarray],
    tgt: np.ndarray,
    classifier: bool,
    steps: int,
    optimizer: dict | None,
    keras_casts: bool = False,
    loss: dict | None = None,
) -> dict[str, np.ndarray]:
    """A training case's outputs (unsampled), from model.get_config() and the initial weights,
    with autograd's reverse mode through the float64 reference. keras_casts: round the
    hyperparameters Keras rounds (see _as_keras_casts), to check a float64 run bit for bit.
    `optimizer` and `loss`: their configs as Keras reports them, checked for what is implemented."""
    check_loss(loss)
    w0 = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    x0 = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    t64 = np.asarray(tgt, dtype=np.float64)
    frozen = [k for k in w0 if k not in trainable]
    moved: dict[str, np.ndarray] = {}

    def loss_of(free, state):
        # autograd hands containers over boxed: index them back into plain dicts of arrays.
        w, x = free["w"], free["x"]
        res = reference_eval(config, {**state, **{k: w[k] for k in trainable}}, {k: x[k] for k in x0}, training=True)
        moved.clear()
        moved.update({k: getval(v) for k, v in res.updated.items()})
        return loss_value(res.outputs[0], t64, classifier)

    value_and_grad = autograd.value_and_grad(loss_of)
    if mode == "grad":
        loss, g = value_and_grad({"w": {k: w0[k] for k in trainable}, "x": x0}, w0)
        out = {"loss": np.asarray(loss)}
        out.update({f"grad/{k}": g["w"][k] for k in trainable})
        out.update({f"grad_input/{k}": g["x"][k] for k in x0})
        return out
    if mode not in ("sgd", "adam"):
        raise ValueError(f"not a training mode: {mode!r}")
    if optimizer is None:
        raise ValueError(f"training mode {mode!r} needs the optimizer's config")
    check_optimizer(mode, optimizer)
    update = (_sgd if mode == "sgd" else _adam)(optimizer, keras_casts)
    w, losses = dict(w0), []
    for t in range(1, steps + 1):
        loss, g = value_and_grad({"w": {k: w[k] for k in trainable}, "x": x0}, w)
        losses.append(loss)
        # Keras assigns the new moving statistics in the forward pass, before the update.
        w.update(moved)
        w.update({k: update(t, k, w[k], g["w"][k]) for k in trainable})
    out = {"loss": np.asarray(losses)}
    out.update({f"delta/{k}": w[k] - w0[k] for k in trainable})
    out.update({f"moving/{k}": w[k] - w0[k] for k in frozen})
    return out
