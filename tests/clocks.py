"""A clock under the test's control, for code that takes ``clock=`` or reads ``jobs.clock.now``."""

from __future__ import annotations

import time

from jobs import clock


class FakeClock:
    def __init__(self, now: float | None = None) -> None:
        # By default the real time, whole seconds: ids and file times stay plausible.
        self.now = float(int(time.time())) if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def to(self, iso: str) -> None:
        self.now = clock.from_iso(iso)
