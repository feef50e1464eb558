"""A real drift cell whose jax needs Python >= 3.12: uv refuses it on this Python, the cell is
locked for Python 3.13, its image is built on the offline Debian trixie base and the cell's
rows come from the runner in it, judged against the goldens like any other cell's.

Skipped where no Docker daemon answers or the base is missing (.ci/run makes both:
`source docker/engine.sh; engine_up; base_image_offline keras-parity/base:trixie`)."""

import json
import sys

import pytest

from keras_parity.drift import cellimage, driver, history, matrix
from keras_parity.drift.matrix import Cell
from keras_parity.registry.builtin import builtin_registry
from keras_parity.run import images
from keras_parity.run.envs import EnvError

pytestmark = pytest.mark.slow


def _base() -> str | None:
    """Why the test cannot run here, or None."""
    try:
        client = images.engine()
    except EnvError:
        return "no Docker daemon answers (see docker/engine.sh)"
    if not client.images.list(name=cellimage.BASES["3.13"]):
        return f"no base image {cellimage.BASES['3.13']} (docker/engine.sh: base_image_offline)"
    return None


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="this Python installs the release itself")
@pytest.mark.skipif(_base() is not None, reason=str(_base()))
def test_a_release_that_needs_python_3_13_runs_in_its_image_and_is_recorded(tmp_path):
    m = matrix.load()
    newest = {"jax": "0.12.0.1"}  # needs Python >= 3.12 (PyPI's metadata)
    m = matrix.Matrix(**{**m.__dict__, "releases": {**m.releases, "jax": (*m.releases["jax"], newest["jax"])}})
    cell = Cell("jax", m.keras[-1], newest["jax"])
    hist = tmp_path / "history.csv"
    logs = []
    (outcome,) = driver.run_cells(
        m, [cell], ["linear"], tmp_path / "scratch", registry=builtin_registry(), jobs=1,
        history_path=hist, root=tmp_path / "drift", log=logs.append,
    )  # fmt: skip
    assert outcome.failure is None, outcome.failure
    rows = history.read(hist)
    assert rows and {r["model"] for r in rows} == {"linear"}
    versions = dict(kv.split("=", 1) for kv in rows[0]["versions"].split(";"))
    assert versions["python"].startswith("3.13.") and versions["jax"] == "0.12.0.1"
    assert versions["keras"] == m.keras[-1]
    for r in rows:  # judged with its numbers, like a cell of this Python
        assert r["verdict"] in ("pass", "fail") and float(r["rel_l2"]) >= 0, r
    assert all(r["verdict"] == "pass" for r in rows), [(r["case"], r["path"], r["reason"]) for r in rows]
    snapshot = driver.snapshot_path(cell, rows[0]["platform"], tmp_path / "drift")
    assert snapshot.exists()
    # the weights it ran, kept for the bit comparison with its neighbours
    assert set(json.loads(snapshot.with_suffix(".json").read_text())["weights"]) == {"linear"}


SPECS = [("k/kernel", (3, 3, 256, 512)), ("c/recurrent_kernel", (512, 2048))]  # 3.2M values
DRAW = f"from keras_parity.run.weights import checksum, generate_weights as g; print(checksum(g({SPECS!r}, 0, 'b')))"


@pytest.mark.skipif(_base() is not None, reason=str(_base()))
def test_weights_are_the_same_bits_under_another_c_library():
    """Debian 13's glibc 2.41 rounds log1pf correctly, 2.36 (this host's Debian 12) does not:
    NumPy's float32 normals moved by an ULP at 3 values in a million there, and ResNet50's
    weights failed their checksum in a Python 3.13 image. The draws are C-library free now."""
    from keras_parity.run.weights import checksum, generate_weights

    here = checksum(generate_weights(SPECS, 0, "b"))
    client = images.engine()
    (image, *_) = client.images.list(filters={"label": f"io.keras-parity.base={cellimage.BASES['3.13']}"})
    out = (
        client.containers.run(image.id, ["-c", DRAW], entrypoint="python", network_mode="none", remove=True)
        .decode()
        .strip()
    )
    assert out == here
