"""Shared pytest set-up: the plugin is imported once so BasicSR is patched and registries are filled."""
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tests run on CPU only and must not try the network.
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

import fcdfn_plugin  # noqa: E402,F401


@pytest.fixture
def repo_root():
    return REPO_ROOT


@pytest.fixture
def python():
    """The interpreter running the tests (the project's virtual environment)."""
    return sys.executable
