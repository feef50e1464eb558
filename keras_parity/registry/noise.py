"""The float32 noise every built-in tolerance is derived from, as measured: models/noise.json.

`keras-parity noise` (keras_parity/calibrate/noise.py) measures it per model case and path and
writes it here with its date. A tolerance is MARGIN times the envelope (spec.ModelSpec.tolerance),
never below MARGIN unit roundoffs of float32: a change of 3 * MARGIN times the noise fails
wherever it is planted, and rounding on another CPU, within the envelope's order, passes.
"""

from __future__ import annotations

import json
from pathlib import Path

from keras_parity import paths

MARGIN = 10.0
U32 = 2.0**-24  # float32's unit roundoff: the noise floor of a cell measured as exact
NOISE_FILE = paths.NOISE_FILE


def load(path: Path = NOISE_FILE) -> dict:
    """The cells of noise.json ({} before the first `keras-parity noise`)."""
    return json.loads(path.read_text())["cells"] if path.exists() else {}
