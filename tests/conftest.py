"""Shared fixtures: every test gets its own data directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Settings read the environment once, at import: point them at a scratch
# directory before Django loads them, never at the developer's ./data.
os.environ.setdefault("JOBS_DATA_DIR", tempfile.mkdtemp(prefix="jobs-test-session-"))
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-that-is-long-enough-0123456789")


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, settings) -> Path:
    """A fresh JOBS_DATA_DIR for each test."""
    root = tmp_path / "data"
    (root / "tmp").mkdir(parents=True)
    settings.JOBS_DATA_DIR = root
    return root


@pytest.fixture
def api(client):
    """Django's test client, speaking JSON to the API."""
    return client


@pytest.fixture
def move_clock(monkeypatch):
    """Set the jobs' clock to the test's start plus the given seconds."""
    from jobs import clock

    start = clock.now()

    def move(seconds: float) -> None:
        monkeypatch.setattr(clock, "now", lambda: start + seconds)

    return move


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Throttle buckets live in the process's memory: each test starts with full ones."""
    from jobs.api import throttling

    throttling.reset()
