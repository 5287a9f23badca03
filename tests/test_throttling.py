"""Creates are throttled per client: a token bucket per address, 429 with Retry-After."""

from __future__ import annotations

import pytest

from jobs import clock
from jobs.api.throttling import TokenBuckets, client_address
from tests.clocks import FakeClock

# Django's test client, then the web server's gateway (tests/api_clients.py).
pytestmark = pytest.mark.both_servers


@pytest.fixture
def now(monkeypatch) -> FakeClock:
    fake_clock = FakeClock()
    monkeypatch.setattr(clock, "now", fake_clock)
    return fake_clock


@pytest.fixture
def small_bucket(settings):
    settings.JOBS_THROTTLE_CREATE_RATE = 2
    settings.JOBS_THROTTLE_CREATE_BURST = 3


def _create(client, address="203.0.113.7", **extra):
    return client.post(
        "/api/jobs", data="{}", content_type="application/json", REMOTE_ADDR=address, **extra
    )


# --- the bucket ------------------------------------------------------------------


def test_a_bucket_gives_a_burst_then_tokens_at_its_rate(now):
    buckets = TokenBuckets(rate=2, burst=3)

    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    now.advance(0.25)
    assert buckets.wait("a") == pytest.approx(0.25)
    now.advance(0.25)
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)


def test_a_bucket_refills_no_further_than_its_burst(now):
    buckets = TokenBuckets(rate=2, burst=3)
    buckets.take("a")
    now.advance(3600)

    assert [buckets.take("a") for _ in range(4)][-1] > 0


def test_keys_have_buckets_of_their_own(now):
    buckets = TokenBuckets(rate=1, burst=1)

    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0


def test_a_clock_stepping_back_takes_no_tokens_away(now):
    buckets = TokenBuckets(rate=1, burst=2)
    buckets.take("a")
    now.advance(-60)

    assert buckets.take("a") == 0.0


def test_it_remembers_a_bounded_number_of_keys(now):
    buckets = TokenBuckets(rate=1, burst=5, max_keys=100)

    for number in range(1_000):
        buckets.take(number)
        now.advance(0.001)

    assert len(buckets) <= 100
    # The newest client's bucket is still there: it was just used.
    assert buckets.take(999) == 0.0 and buckets.wait(999) == 0.0
    assert len(buckets) <= 100


# --- creates over HTTP -------------------------------------------------------------


def test_it_answers_429_with_retry_after_once_a_client_has_spent_its_burst(
    client, now, small_bucket
):
    assert [_create(client).status_code for _ in range(3)] == [202, 202, 202]

    refused = _create(client)

    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert refused["Retry-After"] == "1"
    assert refused.json()["type"] == "/api/problems/throttled"
    now.advance(0.5)
    assert _create(client).status_code == 202


def test_one_client_spending_its_burst_does_not_slow_another(client, now, small_bucket):
    for _ in range(4):
        _create(client, "203.0.113.7")

    assert _create(client, "198.51.100.1").status_code == 202


def test_reads_and_refused_requests_take_no_tokens(client, now, small_bucket):
    for _ in range(10):
        client.get("/api/jobs", REMOTE_ADDR="203.0.113.7")
        client.put("/api/jobs", REMOTE_ADDR="203.0.113.7")
        client.post("/api/jobs", data="a=1", content_type="text/plain", REMOTE_ADDR="203.0.113.7")

    assert [_create(client).status_code for _ in range(3)] == [202, 202, 202]


def test_a_rate_of_zero_turns_it_off(client, now, settings):
    settings.JOBS_THROTTLE_CREATE_RATE = 0
    settings.JOBS_THROTTLE_CREATE_BURST = 1

    assert {_create(client).status_code for _ in range(5)} == {202}


def test_it_is_on_by_default_at_a_generous_rate(settings):
    assert settings.JOBS_THROTTLE_CREATE_RATE >= 10
    assert settings.JOBS_THROTTLE_CREATE_BURST >= 100


# --- the client's address ------------------------------------------------------------


def test_without_proxies_the_client_is_the_peer_whatever_it_forwards(settings):
    settings.JOBS_NUM_PROXIES = 0
    meta = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}

    assert client_address(meta) == "10.0.0.2"


@pytest.mark.parametrize(
    ("proxies", "forwarded", "client"),
    [
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "1.2.3.4, 203.0.113.7", "203.0.113.7"),  # the first hop was made up by the client
        (2, "1.2.3.4, 203.0.113.7, 10.0.0.9", "203.0.113.7"),
        (2, "203.0.113.7", "203.0.113.7"),
    ],
)
def test_behind_proxies_the_client_is_the_address_the_outermost_proxy_saw(
    settings, proxies, forwarded, client
):
    settings.JOBS_NUM_PROXIES = proxies
    meta = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": forwarded}

    assert client_address(meta) == client


def test_behind_a_proxy_clients_get_buckets_of_their_own(client, now, small_bucket, settings):
    settings.JOBS_NUM_PROXIES = 1
    proxy = "10.0.0.2"
    for _ in range(4):
        _create(client, proxy, HTTP_X_FORWARDED_FOR="203.0.113.7")

    assert _create(client, proxy, HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    assert _create(client, proxy, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 202
