"""The CI switch that turns skips into failures really does."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT


def test_skips_fail_when_no_skips_is_set(tmp_path) -> None:
    probe = PROJECT_ROOT / "tests" / f"test_zz_probe_{os.getpid()}.py"
    probe.write_text("import pytest\n\ndef test_needs_tool():\n    pytest.skip('tool missing')\n")
    try:
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)]
        env = {k: v for k, v in os.environ.items() if k != "MAILCHAT_NO_SKIPS"}
        local = subprocess.run(base, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        ci = subprocess.run(
            base,
            cwd=PROJECT_ROOT,
            env={**env, "MAILCHAT_NO_SKIPS": "1"},
            capture_output=True,
            text=True,
        )
    finally:
        probe.unlink()
    assert local.returncode == 0 and "1 skipped" in local.stdout
    assert ci.returncode == 1 and "1 failed" in ci.stdout and "tool missing" in ci.stdout
