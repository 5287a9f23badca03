"""The django-q2 broker on Redis: how it names its server, and the URL it refuses.

What every broker promises (due times, leases, dead letters, batches,
django-q2's own loop) is tested against this one and the file broker alike
in ``tests/contract/test_broker_contract.py``.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from redisstore.broker import RedisBroker
from tests.contract.redis_server import redis_server, redis_url

__all__ = ["redis_server", "redis_url"]


def test_it_names_the_server_and_the_queue(redis_url, redis_server):
    with override_settings(JOBS_REDIS_URL=redis_url):
        broker = RedisBroker(list_key="test")

    assert broker.info() == f"Redis queue 127.0.0.1:{redis_server.port}/0 jobs:queue:{{test}}"


def test_it_refuses_to_start_without_a_redis_url():
    with (
        override_settings(JOBS_REDIS_URL=""),
        pytest.raises(ImproperlyConfigured, match="JOBS_REDIS_URL"),
    ):
        RedisBroker(list_key="test")


def test_it_refuses_a_url_that_is_not_redis_without_repeating_it():
    with (
        override_settings(JOBS_REDIS_URL="http://user:secret@example.invalid/"),
        pytest.raises(ImproperlyConfigured) as raised,
    ):
        RedisBroker(list_key="test")

    assert "secret" not in str(raised.value)
