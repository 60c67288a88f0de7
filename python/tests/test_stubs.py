"""The type stubs match the extension module (mypy's stubtest), and the package type-checks
with them."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("mypy", reason="needs mypy (.ci/run installs it) to check the type stubs")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600)


def test_stubs_match_the_extension_module():
    r = run("mypy.stubtest", "--ignore-disjoint-bases", "tiledio._tiledio")
    assert r.returncode == 0, r.stdout + r.stderr


def test_package_type_checks(tmp_path):
    # the installed package, by name (the stubs and py.typed are part of it)
    r = run("mypy", "--ignore-missing-imports", "--cache-dir", str(tmp_path / "cache"), "-p", "tiledio")
    assert r.returncode == 0, r.stdout + r.stderr
