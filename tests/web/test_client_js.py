"""The browser client's modules, unit-tested with Node's built-in runner (tests/js)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import PROJECT_ROOT


def test_node_unit_tests_pass() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (Debian: apt-get install nodejs); tests/js need it")
    result = subprocess.run(
        [node, "--test", "tests/js/"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = "\n".join(line for line in result.stdout.splitlines() if line.startswith("# "))
    assert result.returncode == 0, (
        f"node --test failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    )
    assert "# fail 0" in summary and "# pass 0" not in summary, summary
