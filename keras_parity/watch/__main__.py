"""`python -m keras_parity.watch`: every watch case observed in this process (its backend from
KERAS_BACKEND), as one JSON object on the last line: {"versions": {...}, "watch": {case: ...}}."""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402

from keras_parity import watch  # noqa: E402
from keras_parity.run.envinfo import versions  # noqa: E402

print(json.dumps({"versions": versions(), "watch": watch.observe(keras.backend.backend())}))
