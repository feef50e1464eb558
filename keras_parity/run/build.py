"""A builder's model as a backend process builds it: loaded or built, its seeded weights, and
the BuilderRecord of what was built (checksums, weight list, graph facts, Keras defaults)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from keras_parity.registry import userload, usermodel
from keras_parity.run.flags import RunFlags
from keras_parity.run.record import BuilderRecord
from keras_parity.run.varpaths import VariablePathError, variable_paths
from keras_parity.run.weights import cached_weights, checksum, config_hash, depthwise_fan_ins, generate_weights


def _int64(a: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) if a.dtype.kind in "iu" else a


def build_model(spec, case, module, asked: RunFlags, timings: dict, cache: Path | None):
    """(model, its seeded weights, its BuilderRecord) for one of the model's builders."""
    import keras

    from keras_parity.run import defaults  # imports keras: after KERAS_BACKEND is set

    user = spec.source
    t0 = time.perf_counter()
    if user and user.kind == "builder":
        # Keras names an unnamed layer by how many the process built before: without a fresh
        # session a builder's variable paths would hang on the models run before it (and on a
        # model that failed on one backend only), and the backends' weights would not line up.
        keras.utils.clear_session()
    model = userload.load(user) if user else getattr(module, case.builder)()
    # A .keras file's weights as saved (float32): what its goldens and float64 reference use.
    # Integers as int64: a Normalization's `count` loads as int64 on TensorFlow, int32 elsewhere.
    loaded = [_int64(np.asarray(w)) for w in model.get_weights()] if user and user.kind == "file" else None
    if user and asked.dtype == "float64":
        model = userload.in_float64(model)  # a file keeps the float32 policy it was saved under
    timings["build"] += time.perf_counter() - t0
    for layer in model.layers if not asked.lstm_cudnn else ():
        if isinstance(layer, keras.layers.LSTM):
            layer.use_cudnn = False  # read at call time: the generic kernel, on any device
    # Paths from the layer tree, not v.path: a loaded file's nested layers may share a v.path.
    try:
        paths = variable_paths(model)
    except VariablePathError as exc:
        raise usermodel.UserModelError(f"{spec.source.name if user else case.builder}: {exc}") from None
    specs = [(p, tuple(v.shape)) for p, v in zip(paths, model.weights)]
    named = {id(v): p for p, v in zip(paths, model.weights)}  # the layer tree walked once
    fan_in = depthwise_fan_ins(model)
    if loaded is not None:  # its trained weights, as loaded
        weights = loaded
    elif user:  # a builder's: each backend would initialise it with numbers of its own
        weights = generate_weights(specs, spec.seed, case.builder, spec.weight_scale, generic=True, fan_in=fan_in)
    else:
        weights = cached_weights(
            specs, spec.seed, case.builder, spec.weight_scale, cache and cache / "weights", fan_in=fan_in
        )
    config = model.get_config()
    record = BuilderRecord(
        config_sha256=config_hash(config),
        weights_sha256=checksum(weights),
        weights=[[p, list(s)] for p, s in specs],
        fan_in=fan_in,
        jit_compile=bool(model.jit_compile),
        trainable=[named[id(v)] for v in model.trainable_variables],
        output_shape=list(model.outputs[0].shape),
        defaults=defaults.layer_defaults(model),
        # the float64 reference walks this graph; parity needs only the hash
        config=config if asked.configs else None,
    )
    return model, weights, record
