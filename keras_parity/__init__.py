"""keras-parity: numerical parity of Keras 3 models across backends, devices and releases."""

__version__ = "0.1.0"
