"""The rate-limit gate: when no process may call the photo source, and when one may probe.

Unsplash gives a key 50 (demo) or 5,000 (production) requests an hour and
no reset time. Once a source says the budget is spent (it raised
:class:`RateLimited`, see :mod:`jobs.photos.unsplash` for which answers
mean that, or a successful answer said ``X-Ratelimit-Remaining: 0``), the
gate closes for every worker process: callers get ``RateLimited`` with the
seconds until the next probe instead of calling. When that time comes, the
one caller holding the store's fetch lock probes; another refusal closes the
gate for twice as long (15 s, 30 s, ... capped at 5 minutes, each stretched
by up to ``jitter`` so that several machines do not probe in step), and a
success opens it and starts the intervals over.

After any other transient failure (network, 5xx, a malformed answer) the
gate closes briefly, for ``error_cooldown_seconds`` or the source's
``Retry-After``: a backlog of due jobs then costs one failed call, not one
per job. A permanent failure (a bad key) is not remembered: the job fails,
and the next call, perhaps with a fixed key, goes through.

The state lives in the pool's store (:class:`storage.protocols.RateLimitGateStore`),
so every process sees the same gate.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from jobs import metrics
from jobs.backoff import doubling
from jobs.photos.errors import PhotoSourceError, RateLimited, TransientPhotoError
from storage.protocols import RateLimitGateStore

log = logging.getLogger(__name__)

# Why the gate is closed (``GateState.reason``).
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"


@dataclass
class GateState:
    """The gate and the last known budget, as stored (one JSON object)."""

    strikes: int = 0  # rate limits in a row; sets the next probe interval
    blocked_until: float | None = None  # epoch seconds; no call before then
    reason: str | None = None  # RATE_LIMITED or UNAVAILABLE while closed
    code: str | None = None  # the error callers get while it is closed
    message: str | None = None
    remaining: int | None = None  # the source's budget at observed_at
    limit: int | None = None
    observed_at: float | None = None

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> GateState:
        known = {field.name for field in fields(cls)}
        state = cls(**{key: value for key, value in stored.items() if key in known})
        state.strikes = state.strikes or 0
        return state

    def to_stored(self) -> dict[str, Any]:
        return asdict(self)


class RateLimitGate:
    FIRST_PROBE_SECONDS = 15.0
    MAX_PROBE_SECONDS = 300.0
    # How old the note of the budget may grow while the gate stays open (see on_success).
    NOTE_SECONDS = 1.0

    def __init__(
        self,
        store: RateLimitGateStore,
        *,
        clock: Callable[[], float],
        jitter: float = 0.2,
        error_cooldown_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.jitter = jitter
        self.error_cooldown_seconds = error_cooldown_seconds
        self._clock = clock
        self._random = random.Random()

    def read(self) -> GateState:
        return GateState.from_stored(self.store.read_gate())

    def is_closed(self, state: GateState) -> bool:
        return self._wait(state, self._clock()) is not None

    @staticmethod
    def _wait(state: GateState, now: float) -> float | None:
        """Seconds until the gate opens, or ``None`` if it is open."""
        until = state.blocked_until
        return until - now if until is not None and until > now else None

    def raise_if_closed(self, state: GateState) -> None:
        """Raise what callers get while the gate is closed: the error that closed it."""
        wait = self._wait(state, self._clock())
        if wait is None:
            return
        code = state.code or RATE_LIMITED
        if state.reason == RATE_LIMITED:
            metrics.rate_limit_wait()
            raise RateLimited(code, state.message or RateLimited.DEFAULT_MESSAGE, retry_after=wait)
        message = state.message or "The photo service failed."
        raise TransientPhotoError(code, message, retry_after=wait)

    # The methods below write the state: call them holding the store's fetch lock.

    def on_failure(self, state: GateState, error: PhotoSourceError) -> None:
        """Close the gate after a failed call; ``error.retry_after`` becomes the wait."""
        if isinstance(error, RateLimited):
            error.retry_after = self.close_for_rate_limit(
                state, error.code, error.message, at_least=error.retry_after
            )
        elif isinstance(error, TransientPhotoError):
            error.retry_after = self._close_for_error(state, error)

    def on_success(self, state: GateState, batch: list[Any]) -> None:
        """Open the gate after a call that returned photos, and note the budget.

        A gate already open, whose note of the budget is younger than
        :data:`NOTE_SECONDS`, is not written again: under a stream the pool
        calls the source tens of times a second, and each write replaced
        the state's file (a rename over the old one). The note read by the
        admin page and ``jobs health`` is then at most that old; a call that
        spends the budget, or opens a closed gate, is always written.
        """
        now = self._clock()
        noted = state.observed_at
        was_open = not (state.strikes or state.blocked_until or state.reason)
        state.remaining = getattr(batch, "remaining", None)
        state.limit = getattr(batch, "limit", None)
        state.observed_at = now
        if state.remaining == 0:
            # This call spent the budget: the next one would be refused.
            source = getattr(batch, "source", None)
            code = f"{source}_rate_limited" if source else RATE_LIMITED
            self.close_for_rate_limit(state, code, RateLimited.DEFAULT_MESSAGE)
            return
        state.strikes = 0
        state.blocked_until = state.reason = state.code = state.message = None
        if was_open and noted is not None and 0 <= now - noted < self.NOTE_SECONDS:
            return
        self.store.write_gate(state.to_stored())

    def close_for_rate_limit(
        self, state: GateState, code: str, message: str, *, at_least: float | None = None
    ) -> float:
        """Close the gate until the next probe; return the seconds until then."""
        now = self._clock()
        state.strikes += 1
        delay = max(self._probe_delay(state.strikes), at_least or 0.0)
        state.blocked_until = now + delay
        state.reason, state.code, state.message = RATE_LIMITED, code, message
        state.remaining, state.observed_at = 0, now
        self.store.write_gate(state.to_stored())
        log.warning("Photo source rate limited; next probe in %.0f s", delay)
        return delay

    def _close_for_error(self, state: GateState, error: TransientPhotoError) -> float:
        delay = max(self.error_cooldown_seconds, error.retry_after or 0.0)
        state.blocked_until = self._clock() + delay
        state.reason, state.code, state.message = UNAVAILABLE, error.code, error.message
        self.store.write_gate(state.to_stored())
        return delay

    def _probe_delay(self, strikes: int) -> float:
        interval = doubling(self.FIRST_PROBE_SECONDS, self.MAX_PROBE_SECONDS, strikes)
        return interval * (1 + self.jitter * self._random.random())

    def report(self) -> dict[str, Any]:
        """The gate and the last known budget, for the admin page and ``jobs health``."""
        state = self.read()
        wait = self._wait(state, self._clock())
        closed = wait is not None
        return {
            "remaining": state.remaining,
            "limit": state.limit,
            "observed_at": state.observed_at,
            "blocked": closed,
            "blocked_until": state.blocked_until if closed else None,
            "retry_after": wait,
            "reason": state.reason if closed else None,
            "code": state.code if closed else None,
            "message": state.message if closed else None,
            "consecutive_rate_limits": state.strikes,
        }
