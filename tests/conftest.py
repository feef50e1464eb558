import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The reference-vs-Keras tests run in this process on the tests environment's backend.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
