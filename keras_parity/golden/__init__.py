"""The goldens: the file format and layout (files.py), the key grammar of the arrays
(keys.py), a model's set replaced as a whole (commit.py), and writing them from runs
(regen.py, `nox -s golden`)."""

from keras_parity.golden.commit import half_written, incomplete, recover, replace_set, unfinished  # noqa: F401
from keras_parity.golden.files import (  # noqa: F401
    GOLDEN,
    GoldenError,
    file_bytes,
    find_snapshot,
    graph_path,
    json_bytes,
    layers_path,
    npz_bytes,
    obtained_path,
    read_graph,
    read_json,
    read_npz,
    read_reference_json,
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
