"""The layout is a contract: a newcomer finds any behaviour from the folder names alone.

These checks read the source (no imports run), so they fail the moment a module
lands in the wrong room, grows past a few hundred lines, or reaches across a
boundary the packages' docstrings promise not to cross.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

MAX_MODULE_LINES = 400
RUNTIME = ("shared", "web", "workers")
# What each shared package may import (besides itself); see shared/__init__.py.
ALLOWED = {
    "core": set(),
    "mail": {"core"},
    "identity": {"core"},
    "realtime": {"core"},
    "index": {"core", "mail"},
    "assistant": {"core", "index", "realtime"},
    "sync": {"core", "mail", "index", "realtime"},
    "privacy": {"core", "identity", "index", "realtime", "sync"},
}


def _modules(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (PROJECT_ROOT / root).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (imports inside functions count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_shared_holds_packages_only() -> None:
    loose = [p.name for p in (PROJECT_ROOT / "shared").glob("*.py") if p.name != "__init__.py"]
    assert loose == [], "every shared module belongs to a domain package"
    packages = {
        p.name for p in (PROJECT_ROOT / "shared").iterdir() if (p / "__init__.py").is_file()
    }
    assert packages == set(ALLOWED)


def test_every_package_says_what_lives_there() -> None:
    for init in _modules(*RUNTIME, "devtools"):
        if init.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(init.read_text("utf-8")))
            assert doc, f"{init.relative_to(PROJECT_ROOT)} needs a docstring"


@pytest.mark.parametrize("root", RUNTIME)
def test_modules_stay_small(root: str) -> None:
    big = {
        str(p.relative_to(PROJECT_ROOT)): n
        for p in _modules(root)
        if (n := len(p.read_text("utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert big == {}, f"split these by concept (at most {MAX_MODULE_LINES} lines)"


def test_shared_imports_neither_flask_nor_celery_nor_the_transports() -> None:
    offenders = {
        str(p.relative_to(PROJECT_ROOT)): sorted(
            m
            for m in _imports(p)
            if m.split(".")[0] in {"flask", "flask_sock", "celery", "web", "workers", "devtools"}
        )
        for p in _modules("shared")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_shared_packages_depend_one_way() -> None:
    crossings = {}
    for path in _modules("shared"):
        package = path.relative_to(PROJECT_ROOT / "shared").parts[0]
        if package == "__init__.py":
            continue
        used = {m.split(".")[1] for m in _imports(path) if m.startswith("shared.")}
        extra = used - ALLOWED[package] - {package}
        if extra:
            crossings[str(path.relative_to(PROJECT_ROOT))] = sorted(extra)
    assert crossings == {}


def test_runtime_never_imports_development_helpers() -> None:
    offenders = [
        str(p.relative_to(PROJECT_ROOT))
        for p in _modules(*RUNTIME)
        if any(m.split(".")[0] == "devtools" for m in _imports(p))
    ]
    assert offenders == []


def test_views_build_no_redis_keys_or_locks() -> None:
    """Views validate, call one shared function and respond; keys and locks live in shared/."""
    offenders = {
        str(p.relative_to(PROJECT_ROOT)): sorted(
            m for m in _imports(p) if m in {"shared.core.keys", "shared.core.locks"}
        )
        for p in _modules("web/api")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_tasks_do_not_import_each_other() -> None:
    """A task module calls shared/, never another task module (signal helpers are fine)."""
    from celery_app import TASK_MODULES

    tasks = set(TASK_MODULES)
    offenders = {
        str(p.relative_to(PROJECT_ROOT)): sorted(m for m in _imports(p) if m in tasks)
        for p in _modules("workers")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_reads_outside_the_checkout() -> None:
    """A clone on its own passes ``make test``: no path reaches the folder beside it."""
    # The markers are built from parts, so this file does not match them itself.
    beside = "shared"
    markers = (f'.parent / "{beside}"', "PROJECT_ROOT" + ".parent", "/".join(("..", beside)))
    outside = [
        str(path.relative_to(PROJECT_ROOT))
        for path in _modules(*RUNTIME, "devtools", "tests", "bench")
        if any(marker in path.read_text("utf-8") for marker in markers)
    ]
    assert outside == [], outside
