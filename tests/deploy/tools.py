"""Debian tools the deploy/ tests run for real (promtool, amtool, nginx, prometheus).

A missing tool skips with the package to install; CI (``.ci/run``) installs
them all and sets MAILCHAT_NO_SKIPS=1, which turns such a skip into a failure.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = PROJECT_ROOT / "deploy"
PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "nginx": "nginx",
}


def tool(name: str) -> str:
    """The tool's path, or skip the test naming the Debian package that ships it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if not found:
        pytest.skip(f"{name} missing; install it with: apt-get install {PACKAGES[name]}")
    return found
