"""`keras.ops.sparsemax` does not sum to one once two values are in its support
(keras-team/keras#23425, fixed upstream by pull request 23469).

Every backend's sparsemax subtracts the sum of the support's cumulative sums, not of its
values: [1, 0.9, -1] gives [0.05, 0, 0] instead of [0.55, 0.45, 0].
"""

import json

import keras
import numpy as np


def check() -> dict:
    got = keras.ops.convert_to_numpy(keras.ops.sparsemax(np.array([[1.0, 0.9, -1.0]], "float32")))[0]
    expected = np.array([0.55, 0.45, 0.0])
    off = float(np.abs(got.astype(np.float64) - expected).max())
    shown = [round(float(v), 4) for v in got]
    return {
        "present": off > 1e-6,
        "measure": off,
        "detail": f"sparsemax([1, 0.9, -1]) = {shown}, not [0.55, 0.45, 0] (sum {got.sum():.3f})",
    }


if __name__ == "__main__":
    print(json.dumps(check()))
