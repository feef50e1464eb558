"""docker/engine.sh is sourced into the user's shell: it must leave that shell as it found it."""

import subprocess

from helpers import ROOT

ENGINE = ROOT / "docker" / "engine.sh"


def _bash(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=30)


def test_sourcing_it_changes_no_shell_option_and_a_failure_does_not_end_the_shell():
    script = f"""
    before=$(set +o; shopt -p); flags=$-
    source {ENGINE}
    [ "$(set +o; shopt -p)" = "$before" ] && [ "$-" = "$flags" ] && echo options-unchanged
    false
    echo still-here
    declare -F engine_up engine_down base_image_offline
    """
    proc = _bash(script)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[:2] == ["options-unchanged", "still-here"], proc.stdout
    assert lines[2:] == ["engine_up", "engine_down", "base_image_offline"]


def test_a_strict_caller_keeps_its_own_options():
    """.ci/run sets -euo pipefail itself, then sources the script."""
    proc = _bash(f'set -euo pipefail; before=$(set +o); source {ENGINE}; [ "$(set +o)" = "$before" ] && echo same')
    assert proc.returncode == 0 and proc.stdout.strip() == "same", proc.stdout + proc.stderr
