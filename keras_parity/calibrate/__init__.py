"""Calibration: the measurements the suite's thresholds are derived from, each its own command
(`keras-parity noise` for the tolerances, `keras-parity growth` for the layer jump R_JUMP)."""
