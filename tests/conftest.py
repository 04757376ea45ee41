"""Shared fixtures. TensorFlow's C++ logs are silenced for every test."""

import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, cwd=None, env=None, timeout=300):
    """Run `code` in a fresh Python process and return the completed run."""
    merged = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd or REPO_ROOT, env=merged,
        capture_output=True, text=True, timeout=timeout,
    )


def run_zoo(*args, cwd=None, env=None, timeout=600):
    """Run the `zoo` command in a fresh process and return the run."""
    merged = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], cwd=cwd or REPO_ROOT,
        env=merged, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def fresh_python():
    return run_python


@pytest.fixture
def zoo_command():
    return run_zoo
