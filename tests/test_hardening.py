"""Hardening without a Docker engine: the workflows run the actions' code they were reviewed
with (every `uses:` pinned by commit SHA, its release tag in a comment), and the containers'
limits and results folder (tests/test_docker.py checks a real container's HostConfig)."""

import re
import stat
from pathlib import Path

import pytest

from keras_parity.errors import UsageError
from keras_parity.run import container

WORKFLOWS = sorted((Path(__file__).resolve().parent.parent / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^\s*(-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def test_there_are_workflows():
    assert {p.name for p in WORKFLOWS} >= {"parity.yml", "tests.yml", "drift.yml", "drift-new.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_with_its_tag_in_a_comment(workflow):
    uses = [line for line in workflow.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert uses, f"{workflow.name} uses no action"
    assert [line for line in uses if not PINNED.match(line)] == []


def test_containers_get_the_default_limits(monkeypatch):
    monkeypatch.delenv(container.MEMORY_ENV, raising=False)
    monkeypatch.delenv(container.PIDS_ENV, raising=False)
    assert container.limits() == {"mem_limit": "8g", "memswap_limit": "8g", "pids_limit": 4096}
    monkeypatch.setenv(container.MEMORY_ENV, "16G")
    monkeypatch.setenv(container.PIDS_ENV, "512")
    assert container.limits() == {"mem_limit": "16g", "memswap_limit": "16g", "pids_limit": 512}


@pytest.mark.parametrize("name, value", [("MEMORY_ENV", "lots"), ("MEMORY_ENV", "0"), ("PIDS_ENV", "-1")])
def test_a_bad_limit_is_a_one_line_usage_error(name, value, monkeypatch):
    monkeypatch.setenv(getattr(container, name), value)
    with pytest.raises(UsageError, match=rf"^{getattr(container, name)}='{value}' is not a") as info:
        container.limits()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("mode", [0o755, 0o777, 0o700])
def test_the_results_folder_is_shared_through_its_group_never_the_world(mode, tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    out.chmod(mode)
    assert container.share_with_container(out) == f"10001:{out.stat().st_gid}"
    got = stat.S_IMODE(out.stat().st_mode)
    assert got & 0o002 == 0 and got & 0o070 == 0o070 and got & 0o700 == mode & 0o700
