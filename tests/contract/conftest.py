"""The contract tests run each test against every backend: files, and Redis."""

from __future__ import annotations

import pytest

from tests.contract.redis_server import redis_server, redis_url

__all__ = ["redis_server", "redis_url"]

BACKENDS = ["file", "redis"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The backend under test; the Redis server starts only for Redis."""
    return request.param
