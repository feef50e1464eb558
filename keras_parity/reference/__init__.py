"""Independent float64 NumPy reference for Keras 3 functional models.

evaluate(config, weights, inputs, training=..., capture=...) runs model.get_config() with
variable-path-keyed weights and returns a Result (outputs, updated, layers). Layer types or
options it does not implement raise UnsupportedLayer instead of computing something else.
"""

from keras_parity.reference.graph import Result, evaluate, reference_gaps
from keras_parity.reference.layers import UnsupportedLayer

__all__ = ["Result", "UnsupportedLayer", "evaluate", "reference_gaps"]
