"""Rehearsing an upgrade (`parity --with NAME==VERSION`): the candidate lock moves only what the
overrides force, a conflict is one line naming it, and the candidate run sits beside the pinned
one against the same goldens, which stay untouched."""

import hashlib
import json

import pytest
from helpers import ROOT, cli

from keras_parity import rehearse
from keras_parity.run import envs


def test_overrides_are_pins_or_refused_by_name():
    assert rehearse.parse_overrides(["Keras==3.14.1", "jax_lib==0.10.2"]) == {
        "keras": "Keras==3.14.1",
        "jax-lib": "jax_lib==0.10.2",
    }
    with pytest.raises(rehearse.RehearsalError, match="--with 'keras>=3' is not a pin; write it as NAME==VERSION"):
        rehearse.parse_overrides(["keras>=3"])


def test_only_the_locks_holding_an_override_are_rehearsed():
    overrides = rehearse.parse_overrides(["jaxlib==0.10.1"])
    assert rehearse.affected("jax", overrides) and not rehearse.affected("torch", overrides)
    assert all(
        rehearse.affected(b, rehearse.parse_overrides(["keras==3.14.1"])) for b in ("tensorflow", "jax", "torch")
    )


def test_the_candidate_lock_moves_only_what_the_override_forces(tmp_path):
    lock = rehearse.candidate_lock("jax", rehearse.parse_overrides(["keras==3.14.1"]), tmp_path)
    assert rehearse.changed_pins(envs.lock_file("jax"), lock) == ["keras 3.15.1 -> 3.14.1"]
    assert "--hash=sha256:" in lock.read_text()  # synced with --require-hashes, as the pinned ones


def test_an_override_that_conflicts_with_the_lock_names_the_conflict(tmp_path):
    with pytest.raises(rehearse.RehearsalError) as exc:
        rehearse.candidate_lock("jax", rehearse.parse_overrides(["numpy==1.20.0"]), tmp_path)
    message = str(exc.value)
    assert "\n" not in message and "numpy==1.20.0 cannot be installed with the rest of the jax lock" in message
    assert "jax==0.10.2 depends on numpy>=2.0" in message


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_rehearsal_runs_beside_the_pinned_run_and_leaves_the_goldens_alone(tmp_path):
    before = _digest(ROOT / "golden" / "linear")
    done = cli("parity", "--with", "keras==3.14.1", "--model", "linear", "--backend", "jax", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "jax candidate: keras 3.15.1 -> 3.14.1" in done.stdout
    doc = json.loads((tmp_path / "rehearse" / "rehearsal.json").read_text())
    assert doc["moved"] == {"jax": ["keras 3.15.1 -> 3.14.1"]}
    cells = {c["cell"]: c for c in doc["cells"]}
    assert len(cells) == 13 and all(c["verdict"] == ["pass", "pass"] for c in cells.values())
    assert all(None not in c["rel_l2"] for c in cells.values())
    assert _digest(ROOT / "golden" / "linear") == before


@pytest.mark.slow
def test_a_bad_override_stops_with_exit_code_2(tmp_path):
    done = cli("parity", "--with", "numpy==1.20.0", "--model", "linear", "--backend", "jax", "--out", str(tmp_path))
    assert done.returncode == 2 and done.stderr.strip().startswith("error: numpy==1.20.0 cannot be installed")
