"""The golden format: byte-stable, pickle-free, atomic, with clear errors for bad files."""

import numpy as np
import pytest

from keras_parity import golden


def test_same_numbers_give_same_bytes(tmp_path):
    arrays = {"b/output": np.arange(6, dtype=np.float32).reshape(2, 3), "a/output": np.ones(3)}
    p = tmp_path / "x.npz"
    assert golden.write_npz(p, arrays) is True
    first = p.read_bytes()
    assert golden.write_npz(p, dict(reversed(list(arrays.items())))) is False  # unchanged: not rewritten
    assert p.read_bytes() == first == golden.npz_bytes(arrays)
    back = golden.read_npz(p)
    assert sorted(back) == ["a/output", "b/output"]
    assert back["b/output"].dtype == np.float32 and np.array_equal(back["b/output"], arrays["b/output"])


def test_object_arrays_are_refused_on_write_and_read(tmp_path):
    with pytest.raises(ValueError):
        golden.npz_bytes({"x": np.array([{"a": 1}], dtype=object)})
    # A pickled member written by np.savez must not be loaded.
    p = tmp_path / "pickled.npz"
    np.savez(p, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(golden.GoldenError, match="corrupt"):
        golden.read_npz(p)


def test_missing_and_truncated_files_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(golden.GoldenError, match=r"missing; create it with `nox -s golden`"):
        golden.read_npz(tmp_path / "nope.npz")
    p = tmp_path / "t.npz"
    golden.write_npz(p, {"x": np.ones(100)})
    p.write_bytes(p.read_bytes()[:150])
    with pytest.raises(golden.GoldenError) as exc:
        golden.read_npz(p)
    msg = str(exc.value)
    assert str(p) in msg and "corrupt" in msg and "git checkout" in msg and "\n" not in msg
    j = tmp_path / "m.json"
    j.write_text("{not json")
    with pytest.raises(golden.GoldenError, match="corrupt"):
        golden.read_json(j)


def test_failed_write_leaves_previous_file(tmp_path, monkeypatch):
    p = tmp_path / "g.npz"
    golden.write_npz(p, {"x": np.zeros(3)})
    before = p.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(golden.files.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        golden.write_npz(p, {"x": np.ones(3)})
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["g.npz"]  # no temp file left behind
