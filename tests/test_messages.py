"""Messages that send the user the right way: a model file the candidate Keras cannot read names
its root cause and the log, new goldens are called new, and `nox -s golden` fixes carry the
options that name the model and its golden folder."""

from keras_parity import golden
from keras_parity.golden import regen
from keras_parity.judge.compare import CellResult, Finding
from keras_parity.judge.goldens import read_goldens, regen_command
from keras_parity.registry import usermodel
from keras_parity.registry.builtin import builtin_registry
from keras_parity.rehearse import Pair, row
from keras_parity.run import record

ROOT_CAUSE = "GlorotUniform.__init__() got an unexpected keyword argument 'input_axes'"


def _keras_loading_error() -> TypeError:
    """As keras/src/saving/serialization_lib.py nests them: a layer's error inside the model's."""
    inner = TypeError(f"<class 'Dense'> could not be deserialized properly. Please ensure ...\n\n"
                      f"config={{'units': 1}}.\n\nException encountered: {ROOT_CAUSE}")  # fmt: skip
    return TypeError(f"<class 'Functional'> could not be deserialized properly. Please ensure ...\n\n"
                     f"config={{'layers': []}}.\n\nException encountered: {inner}")  # fmt: skip


def test_a_model_file_keras_cannot_read_names_its_root_cause_not_the_models_code():
    line = record.one_line(_keras_loading_error(), "jax", users=True)
    assert "\n" not in line and f"root cause: {ROOT_CAUSE}" in line
    assert line.startswith("TypeError: <class 'Functional'> could not be deserialized properly; root cause")
    assert "fix it there" not in line and "saved by a newer Keras" in line


def test_an_error_in_the_users_code_still_says_where_to_look():
    line = record.one_line(ValueError("bad shape\nmore"), "torch", users=True)
    assert line == "ValueError: bad shape (raised by the model's own code on torch; fix it there)"
    assert record.one_line(ValueError("bad shape"), "torch", users=False) == "ValueError: bad shape"


def test_a_candidates_error_names_its_backends_log(tmp_path):
    why = "runner: TypeError: ... could not be deserialized properly; root cause: " + ROOT_CAUSE
    failed = CellResult("my", "*", "jax", "cpu", "*", "error", (Finding("run", why),))
    passed = CellResult("my", "*", "jax", "cpu", "*", "pass")
    got = row(Pair(passed, failed), tmp_path / "rehearse" / "candidate")
    assert got["problems"][-1] == f"the candidate's log: {tmp_path / 'rehearse' / 'candidate' / 'jax.log'}"
    assert ROOT_CAUSE in got["problems"][0]


def test_new_golden_files_are_called_new_and_changed_ones_changed(tmp_path, monkeypatch):
    path, content = tmp_path / "m" / "reference.json", {"versions": {"keras": "3.15.1"}}
    monkeypatch.setattr(regen, "_model_writes", lambda *a: ([(path, content)], 0))
    lines: list[str] = []
    assert regen.regenerate({}, ["m"], {"m": builtin_registry()["linear"]}, tmp_path, log=lines.append) == 0
    assert lines == ["  m/reference.json: new"]
    content["versions"]["keras"] = "3.16.0"
    regen.regenerate({}, ["m"], {"m": builtin_registry()["linear"]}, tmp_path, log=lines.append)
    assert lines[1:] == ["  m/reference.json: metadata changed (versions, knobs, checksums or shapes)"]


def test_the_golden_fix_names_the_model_file_and_its_golden_folder(tmp_path):
    source = usermodel.Source("my", "file", str(tmp_path / "my.keras"), str(tmp_path / "g"))
    spec = usermodel.spec(source)
    want = f"`nox -s golden -- --model-file {tmp_path / 'my.keras'} --golden-dir {tmp_path / 'g'}`"
    assert regen_command(spec) == want
    g = read_goldens("my", golden.GOLDEN, spec)
    assert g.regen == want and g.error == f"no goldens for my in {tmp_path / 'g'}; create them with {want}"
    assert regen_command(spec, "--snapshots-only").startswith("`nox -s golden -- --snapshots-only --model-file")


def test_a_users_builder_is_named_by_its_model_option_and_a_built_in_model_needs_none(tmp_path):
    spec = usermodel.spec(usermodel.Source("mine", "builder", "pkg.mod:build", str(tmp_path)))
    assert regen_command(spec) == f"`nox -s golden -- --model pkg.mod:build --golden-dir {tmp_path}`"
    assert read_goldens("mine", golden.GOLDEN, spec).regen == regen_command(spec)
    assert regen_command(builtin_registry()["linear"]) == "`nox -s golden`"
