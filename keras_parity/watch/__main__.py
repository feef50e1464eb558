"""`python -m keras_parity.watch`: every watch case observed in this process (its backend from
KERAS_BACKEND), as one JSON object on the last line: {"versions": {...}, "watch": {case: ...}}."""

import json
import os
from importlib import metadata

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402

from keras_parity import watch  # noqa: E402

_LIBRARIES = ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "numpy")


def _versions() -> dict[str, str]:
    out = {}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


print(json.dumps({"versions": _versions(), "watch": watch.observe(keras.backend.backend())}))
