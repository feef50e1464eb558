"""The GitHub Actions workflows run the actions' code they were reviewed with: every `uses:` is
pinned by commit SHA, with the release tag it stands for in a comment."""

import re
from pathlib import Path

import pytest

WORKFLOWS = sorted((Path(__file__).resolve().parent.parent / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^\s*(-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def test_there_are_workflows():
    assert {p.name for p in WORKFLOWS} >= {"parity.yml", "tests.yml", "drift.yml", "drift-new.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_with_its_tag_in_a_comment(workflow):
    uses = [line for line in workflow.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert uses, f"{workflow.name} uses no action"
    assert [line for line in uses if not PINNED.match(line)] == []
