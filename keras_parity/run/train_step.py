"""Gradients and optimizer steps on a Keras model, each backend's own way (backend processes).

Paths of a training case:
  'eager'  gradients: the loss under the backend's autodiff (tf.GradientTape, a jitted
           jax.value_and_grad over stateless_call, torch autograd), as a custom loop takes them.
  'fit'    optimizer steps: model.compile + train_on_batch, the compiled step model.fit runs.
The float64 reference of the same quantities is keras_parity/run/training.py.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_parity.run import defaults, training
from keras_parity.run.varpaths import path_of


def make_loss(classifier: bool):
    """The loss as users write it: only what the model's outputs require (logits) is given."""
    if classifier:
        return keras.losses.CategoricalCrossentropy(from_logits=True)
    return keras.losses.MeanSquaredError()


def make_optimizer(kind: str, hyper: dict):
    """The optimizer with the registry's hyperparameters, the rest Keras's defaults (Adam is
    given none: `Adam()`, as users write it)."""
    return getattr(keras.optimizers, training.OPTIMIZER_CLASSES[kind])(**hyper)


def configs(hyper: dict[str, dict], classifier: bool) -> dict:
    """Every optimizer's and the loss's full Keras config, defaults included, which the float64
    reference applies; and under 'defaults', their classes' default configs (run/defaults.py)."""
    # 'name' carries a per-process counter (sgd_6); it is no hyperparameter.
    optimizers = {kind: make_optimizer(kind, h) for kind, h in hyper.items()}
    out = {kind: {k: v for k, v in o.get_config().items() if k != "name"} for kind, o in optimizers.items()}
    loss = make_loss(classifier)
    out["loss"] = keras.saving.serialize_keras_object(loss)
    out["defaults"] = defaults.object_defaults(*optimizers.values(), loss)
    return out


def _np(x) -> np.ndarray:
    a = np.asarray(keras.ops.convert_to_numpy(x))
    return a.astype(np.float32) if str(a.dtype) in ("float16", "bfloat16") else a


def _call_arg(model, xs):
    # xs in model.inputs order, which is model.input flattened: one array, a list or a dict.
    return keras.tree.pack_sequence_as(model.input, list(xs))


_JAX_GRAD: dict[tuple[int, str], object] = {}


def _jax_grad(model, loss_fn):
    """One jitted value-and-grad per model and loss, as a JAX training loop jits its step (op
    by op, every primitive compiles on its own: slower even for the small models; docs/measurements.md)."""
    key = (id(model), loss_fn.name)
    if key not in _JAX_GRAD:
        import jax

        def loss_of(weights, xs, frozen, target):
            y, moved = model.stateless_call(weights, frozen, _call_arg(model, xs), training=True)
            return loss_fn(target, y), moved

        _JAX_GRAD[key] = jax.jit(jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True))
    return _JAX_GRAD[key]


def gradients(model, xs: list, target, loss_fn):
    """(loss, weight gradients in trainable_variables order, input gradients), as backend
    tensors; a training-mode forward, so BatchNormalization's moving statistics move too."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xs = [tf.convert_to_tensor(x) for x in xs]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            loss = loss_fn(target, model(_call_arg(model, xs), training=True))
        grads = tape.gradient(loss, [*model.trainable_variables, *xs])
        # An untaken ops.cond branch has no gradient path in TensorFlow: its gradient is zero.
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, [*model.trainable_variables, *xs])]
    elif backend == "jax":
        (loss, moved), (gw, gx) = _jax_grad(model, loss_fn)(
            [v.value for v in model.trainable_variables],
            [keras.ops.convert_to_tensor(x) for x in xs],
            [v.value for v in model.non_trainable_variables],
            target,
        )
        for v, value in zip(model.non_trainable_variables, moved):
            v.assign(value)
        grads = [*gw, *gx]
    elif backend == "torch":
        xs = [keras.ops.convert_to_tensor(x).detach().requires_grad_(True) for x in xs]
        model.zero_grad()
        loss = loss_fn(target, model(_call_arg(model, xs), training=True))
        loss.backward()
        grads = [v.value.grad for v in model.trainable_variables] + [x.grad for x in xs]
        grads = [keras.ops.zeros_like(v) if g is None else g for g, v in zip(grads, [*model.trainable_variables, *xs])]
    else:
        raise ValueError(f"no gradient path for backend '{backend}'")
    n = len(model.trainable_variables)
    return loss, grads[:n], grads[n:]


def run(model, case, xs: list, tgt: np.ndarray, hyper: dict, steps: int) -> dict[str, np.ndarray]:
    """A training case's outputs (sampled as training.sample does), from the model's current
    weights. Leaves the model trained: the caller resets weights between cells."""
    loss_fn = make_loss(case.classifier)
    named = path_of(model)  # each variable's name in the layer tree (run/varpaths.py)
    tgt = tgt.astype(keras.config.floatx())
    if case.mode == "grad":
        loss, gw, gx = gradients(model, xs, tgt, loss_fn)
        out = {"loss": _np(loss)}
        out.update({f"grad/{named[id(v)]}": _np(g) for v, g in zip(model.trainable_variables, gw)})
        out.update({f"grad_input/{t.name}": _np(g) for t, g in zip(model.inputs, gx)})
        return training.sample(out)
    before = {named[id(v)]: _np(v) for v in model.weights}
    optimizer = make_optimizer(case.mode, hyper[case.mode])
    model.compile(optimizer=optimizer, loss=loss_fn)
    # Its slots made before the first step, as Keras makes them on JAX and torch (and on
    # TensorFlow under a distribution strategy): made inside TensorFlow's first traced step,
    # they make it trace the step twice (ResNet50: +25 s). Zeros either way: same numbers.
    optimizer.build(model.trainable_variables)
    losses = []
    for _ in range(steps):
        # keras 3.14.1 returns the running mean of the loss over train_on_batch calls, 3.15.1
        # this call's: reset, so every release reports the loss of the step.
        model.reset_metrics()
        losses.append(model.train_on_batch(_call_arg(model, xs), tgt))
    trainable = {named[id(v)] for v in model.trainable_variables}
    out = {"loss": np.asarray(losses, dtype=keras.config.floatx())}
    for v in model.weights:
        # The exact difference of the two stored values (in float64), rounded once.
        path = named[id(v)]
        w0 = before[path]
        delta = (_np(v).astype(np.float64) - w0.astype(np.float64)).astype(w0.dtype)
        out[f"{'delta' if path in trainable else 'moving'}/{path}"] = delta
    return training.sample(out)
