"""Throttling per client: token buckets kept in this process's memory.

Creates are throttled per client address (``JOBS_THROTTLE_CREATE_RATE``
per second, bursts of ``JOBS_THROTTLE_CREATE_BURST``; a rate of 0 turns it
off; see :mod:`jobs.api.create`), and admin logins per address and username
(see :mod:`jobs.admin`).

The buckets live in the memory of each web process, not in a shared store:
checking one is a dictionary lookup under a lock on the create path, which
is hot, and nothing is written. With N web processes a client may get up to
N times the rate; the aim is to keep one client from crowding out the
others, not to meter it exactly. A restart forgets the buckets.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from jobs import clock


class TokenBuckets:
    """One token bucket per key: ``burst`` tokens, refilled at ``rate`` per second.

    The number of keys is bounded (``max_keys``): when it is reached, buckets
    that have refilled completely are forgotten (a new one would be the
    same), and if that is not enough the older half goes, which gives those
    clients a full bucket again rather than letting memory grow with every
    address an attacker can spoof or rotate.
    """

    def __init__(self, *, rate: float, burst: int, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[object, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _tokens(self, key: object, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return self.burst
        tokens, stamp = bucket
        # max(): the wall clock may step back; that must not take tokens away.
        return min(self.burst, tokens + max(0.0, now - stamp) * self.rate)

    def take(self, key: object) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there is."""
        now = clock.now()
        with self._lock:
            tokens = self._tokens(key, now)
            if tokens >= 1.0:
                if key not in self._buckets and len(self._buckets) >= self.max_keys:
                    self._forget_some(now)
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            return (1.0 - tokens) / self.rate

    def wait(self, key: object) -> float:
        """The seconds until ``key`` has a token (0.0: now), without taking one."""
        now = clock.now()
        with self._lock:
            tokens = self._tokens(key, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def forget(self, key: object) -> None:
        with self._lock:
            self._buckets.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_some(self, now: float) -> None:
        full = [key for key in self._buckets if self._tokens(key, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys // 2:
            # Dicts keep insertion order: the first keys are the longest known.
            for key in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[key]


def client_address(meta: Mapping[str, str]) -> str:
    """The client's address (from a request's ``META`` or WSGI environ): the peer, or the
    one named by the trusted proxies in front.

    With ``JOBS_NUM_PROXIES`` = N, the last N addresses of
    ``X-Forwarded-For`` were added by our own proxies, and the N-th from the
    end is the client as the outermost of them saw it; anything before it
    was sent by the client and proves nothing.
    """
    proxies = settings.JOBS_NUM_PROXIES
    if proxies:
        forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return meta.get("REMOTE_ADDR") or "unknown"


_create_buckets: TokenBuckets | None = None
_login_buckets: TokenBuckets | None = None
_lock = threading.Lock()


def create_buckets() -> TokenBuckets | None:
    """The buckets of creates per client, or None when creates are not throttled."""
    global _create_buckets
    if _create_buckets is None and settings.JOBS_THROTTLE_CREATE_RATE:
        with _lock:
            if _create_buckets is None:
                _create_buckets = TokenBuckets(
                    rate=settings.JOBS_THROTTLE_CREATE_RATE,
                    burst=settings.JOBS_THROTTLE_CREATE_BURST,
                )
    return _create_buckets


def login_buckets() -> TokenBuckets:
    """Failed admin logins per (address, username): N in a window, then one per window / N."""
    global _login_buckets
    if _login_buckets is None:
        with _lock:
            if _login_buckets is None:
                failures = settings.JOBS_THROTTLE_LOGIN_FAILURES
                _login_buckets = TokenBuckets(
                    rate=failures / settings.JOBS_THROTTLE_LOGIN_WINDOW, burst=failures
                )
    return _login_buckets


def reset() -> None:
    """Forget every bucket (tests; a change of the settings)."""
    global _create_buckets, _login_buckets
    with _lock:
        _create_buckets = _login_buckets = None


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs) -> None:
    if setting.startswith("JOBS_THROTTLE_"):
        reset()


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
