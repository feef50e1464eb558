"""What a backend process inherits: the harness's source first on PYTHONPATH, the user's own
entries kept after it (a builder module found through PYTHONPATH is found in the runner too)."""

import os
import subprocess
import sys

from keras_parity.run import envinfo
from keras_parity.run.launch import child_env


def test_the_users_pythonpath_is_kept_after_the_harness(monkeypatch, tmp_path):
    mine = str(envinfo.source_path())
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "a"), mine, str(tmp_path / "b")]))
    assert child_env()["PYTHONPATH"].split(os.pathsep) == [mine, str(tmp_path / "a"), str(tmp_path / "b")]
    monkeypatch.delenv("PYTHONPATH")
    assert child_env()["PYTHONPATH"] == mine


def test_a_module_on_the_users_pythonpath_imports_in_the_child(monkeypatch, tmp_path):
    (tmp_path / "userbuilders_on_path.py").write_text("VALUE = 42\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    code = "import userbuilders_on_path, keras_parity; print(userbuilders_on_path.VALUE)"
    proc = subprocess.run([sys.executable, "-c", code], env=child_env(), cwd="/", capture_output=True, text=True)
    assert proc.stdout.strip() == "42", proc.stderr
