"""Matching a user's .npz to the model's inputs, on the harness side (no Keras)."""

import json
import zipfile

import numpy as np
import pytest

from keras_parity.registry import userload, usermodel

ONE = [("image", (None, 3), "float32")]
TWO = [("image", (None, 3), "float32"), ("mask", (None, 3), "float32")]
X = np.zeros((2, 3), "float32")


def test_one_array_feeds_one_input_whatever_its_name():
    assert list(userload.check_feed({"x": X}, ONE, "in.npz", "m")) == ["image"]


def test_several_inputs_still_need_their_names():
    with pytest.raises(usermodel.UserModelError, match=r"holds \['a', 'b'\] but m takes inputs \['image', 'mask'\]"):
        userload.check_feed({"a": X, "b": X}, TWO, "in.npz", "m")
    with pytest.raises(usermodel.UserModelError, match=r"holds \['x'\] but m takes inputs"):
        userload.check_feed({"x": X}, TWO, "in.npz", "m")


def _keras_file(path, input_layers):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Functional", "config": {"input_layers": input_layers}}))
    return path


@pytest.mark.parametrize(
    "arrays, input_layers, note",
    [
        ({"x": X}, ["image", 0, 0], "note: in.npz: its one array 'x' feeds m's input 'image'"),
        ({"image": X}, ["image", 0, 0], None),
        ({"arr_0": X}, ["image", 0, 0], None),  # numpy.savez(path, array): by position, no note
        ({"x": X}, [["image", 0, 0], ["mask", 0, 0]], None),  # refused by the runner, with the names
    ],
    ids=["renamed", "same-name", "positional", "two-inputs"],
)
def test_the_one_line_note(tmp_path, arrays, input_layers, note):
    np.savez(tmp_path / "in.npz", **arrays)
    model = _keras_file(tmp_path / "m.keras", input_layers)
    source = usermodel.from_file(model, tmp_path / "in.npz", None, None)
    assert usermodel.inputs_note(source) == note
