"""Every command's --help describes every option (a newcomer's first hour starts there)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

COMMANDS = [
    ["producer"],
    ["producer", "catalog"],
    ["producer", "status"],
    ["producer", "redrive"],
    ["producer", "resubmit"],
    ["producer", "stack"],
    ["producer.stack.emulator"],
    ["producer.synthetic"],
    ["producer.regions.basins"],
    ["producer.demo"],
    ["worker"],
    ["bench"],
]


def undescribed_options(help_text: str) -> list[str]:
    """Options listed in an argparse help without a description on their line or the next."""
    lines = help_text.splitlines()
    missing = []
    for i, line in enumerate(lines):
        if not re.match(r"^  -", line):
            continue
        invocation, _, description = line.strip().partition("  ")
        following = lines[i + 1] if i + 1 < len(lines) else ""
        continued = following.startswith(" " * 6) and not following.strip().startswith("-")
        if invocation != "-h, --help" and not description.strip() and not continued:
            missing.append(invocation)
    return missing


def test_the_check_finds_an_undescribed_option():
    text = (
        "options:\n  -h, --help  show\n  -H HOST, --host HOST\n  -p PORT, --port PORT  the port\n"
        "  --long-one LONG\n        described below\n"
    )
    assert undescribed_options(text) == ["-H HOST, --host HOST"]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_option_is_described(command):
    result = subprocess.run(
        [sys.executable, "-m", *command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert undescribed_options(result.stdout) == []
