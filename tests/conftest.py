"""Shared fixtures: every test gets its own data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

# The session's scratch data directory and key are set by
# jobsite/settings_test.py, which pytest-django loads before any conftest.


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, settings) -> Path:
    """A fresh JOBS_DATA_DIR for each test."""
    root = tmp_path / "data"
    (root / "tmp").mkdir(parents=True)
    settings.JOBS_DATA_DIR = root
    return root


def pytest_generate_tests(metafunc):
    # Modules marked both_servers run each test with Django's test client and
    # through the web server's gateway (tests/api_clients.py).
    marked = metafunc.definition.get_closest_marker("both_servers")
    if marked and "api_server" in metafunc.fixturenames:
        metafunc.parametrize("api_server", ["django", "gateway"])


@pytest.fixture
def api_server() -> str:
    """Which server the ``client`` fixture speaks to (see ``both_servers``)."""
    return "django"


@pytest.fixture
def client(api_server):
    """Django's test client; in ``both_servers`` modules, also the web server's gateway."""
    from django.test import Client

    from tests.api_clients import GatewayClient

    return GatewayClient() if api_server == "gateway" else Client()


@pytest.fixture
def now(monkeypatch):
    """The jobs' clock, under the test's control (``now.advance(5)``, ``now.to(iso)``)."""
    from jobs import clock
    from tests.clocks import FakeClock

    fake_clock = FakeClock()
    monkeypatch.setattr(clock, "now", fake_clock)
    return fake_clock


@pytest.fixture
def move_clock(now):
    """Set the jobs' clock to the test's start plus the given seconds."""
    start = now()

    def move(seconds: float) -> None:
        now.now = start + seconds

    return move


@pytest.fixture
def fake_unsplash(settings):
    """A fake Unsplash API on loopback, and the settings pointing the photo source at it."""
    from tests.fake_unsplash import FakeUnsplash

    with FakeUnsplash() as server:
        settings.UNSPLASH_ACCESS_KEY = "test"
        settings.UNSPLASH_API_URL = server.url
        yield server


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Throttle buckets live in the process's memory: each test starts with full ones."""
    from jobs import admission
    from jobs.api import throttling

    throttling.reset()
    admission.reset()
