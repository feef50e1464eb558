"""The reproducers of the watch list, one module each (keras_parity/watch/__init__.py).

Each imports only keras, numpy and float64_mode below, runs alone (`KERAS_BACKEND=torch python -m
keras_parity.watch.cases.<name>` prints its observation as JSON) and has a `check()` that
returns {"present": bool, "measure": float, "detail": str}; its docstring is the issue text.
"""

import contextlib


def float64_mode():
    """JAX's float64 switched on for a block (as JAX_ENABLE_X64=1 would be at start: without it
    JAX computes float64 in float32 silently); nothing to switch on the other backends."""
    import keras

    if keras.backend.backend() != "jax":
        return contextlib.nullcontext()
    import jax

    if hasattr(jax, "enable_x64"):  # newer releases
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()
