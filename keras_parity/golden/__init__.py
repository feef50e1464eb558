"""The goldens: the file format and layout (files.py), the key grammar of the arrays
(keys.py), and writing them from runs (regen.py, `nox -s golden`)."""

from keras_parity.golden.files import (  # noqa: F401
    GOLDEN,
    GoldenError,
    find_snapshot,
    graph_path,
    layers_path,
    npz_bytes,
    obtained_path,
    read_json,
    read_npz,
    reference_path,
    snapshot_identity,
    snapshot_path,
    weights_path,
    write_bytes,
    write_json,
    write_npz,
    write_obtained,
    write_run,
)
from keras_parity.golden.keys import SAMPLE, SEP, children, head, key, output, part, sampled  # noqa: F401
