"""Shared fixtures: the `basin` binary under test and a way to run it.

The binary is $BASIN_BINARY, else the repository's .build/release/basin, else .build/debug/basin;
without one every test that needs it fails, saying to build first.
"""
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def find_basin():
    if os.environ.get("BASIN_BINARY"):
        return os.path.abspath(os.environ["BASIN_BINARY"])
    for build in ("release", "debug"):
        path = os.path.join(ROOT, ".build", build, "basin")
        if os.path.exists(path):
            return path
    return None


@pytest.fixture(scope="session")
def basin_binary():
    path = find_basin()
    if path is None:
        pytest.fail("no basin binary: build it first (bash scripts/setup) or set BASIN_BINARY")
    return path


class Runner:
    """Runs the basin binary and this environment's Python in a working directory."""

    def __init__(self, binary, cwd):
        self.binary, self.cwd = binary, str(cwd)

    def __call__(self, *args, cwd=None):
        """basin ARGS; its stdout, or an AssertionError with its stderr."""
        done = subprocess.run([self.binary, *map(str, args)], cwd=cwd or self.cwd, capture_output=True, text=True)
        assert done.returncode == 0, f"basin {' '.join(map(str, args))} failed: {done.stderr.strip()}"
        return done.stdout

    def python(self, *args, cwd=None, timeout=600):
        return subprocess.run([sys.executable, *map(str, args)], cwd=cwd or self.cwd, capture_output=True, text=True,
                              timeout=timeout)

    def script(self, name, *args, cwd=None, timeout=600):
        """A console script of the installed package (basin-plot, basin-torch, ...), from this venv."""
        path = os.path.join(os.path.dirname(sys.executable), name)
        assert os.path.exists(path), f"{name} is not installed next to {sys.executable}"
        return subprocess.run([path, *map(str, args)], cwd=cwd or self.cwd, capture_output=True, text=True,
                              timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("basin")


@pytest.fixture(scope="module")
def basin(basin_binary, workdir):
    return Runner(basin_binary, workdir)


def close(a, b, tolerance=1e-5):
    return abs(a - b) <= tolerance * max(abs(a), abs(b), 1e-12)


def free_port():
    """A TCP port on the loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
