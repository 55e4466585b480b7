"""Debian's Chromium driven by Playwright for Python, for the end-to-end tests.

``playwright install`` cannot download browsers here, so tests launch the
system's ``/usr/bin/chromium`` (``MAILCHAT_CHROMIUM`` overrides the path).
When the browser or the package is missing the tests skip, naming what to
install; CI (``MAILCHAT_NO_SKIPS=1``) turns that skip into a failure.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from tests.conftest import PROJECT_ROOT

CHROMIUM = Path(os.environ.get("MAILCHAT_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "e2e"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Installed before the page's own scripts: it sees every unhandled rejection even
# though the page's handler turns them into notifications, and counts EventSources
# open at once (the real EventSource, observed, not replaced in behaviour).
INSTRUMENTATION = """
window.__rejections = [];
window.addEventListener("unhandledrejection", (e) => window.__rejections.push(String(e.reason)));
(() => {
  const Real = window.EventSource;
  const es = (window.__es = { open: 0, max: 0, created: 0 });
  window.EventSource = class extends Real {
    constructor(...args) {
      super(...args);
      this.__open = true;
      es.open += 1;
      es.created += 1;
      es.max = Math.max(es.max, es.open);
    }
    close() {
      if (this.__open) {
        this.__open = false;
        es.open -= 1;
      }
      super.close();
    }
  };
})();
"""


def missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing: .venv/bin/pip install -e '.[dev]'"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (Debian 12)"
    return None
