"""Photos are fetched ahead for jobs about to fall due, and only for them."""

from __future__ import annotations

import threading

from jobs import photos, services
from jobs.photos import BATCH_SIZE
from jobs.worker import Prefetcher


def test_it_fetches_photos_ahead_for_jobs_falling_due(settings):
    settings.UNSPLASH_ACCESS_KEY = ""  # the offline demo source
    due_soon = BATCH_SIZE + 10
    for _ in range(due_soon):
        services.job_create(delay_seconds=5)

    calls = photos.prefetch()

    assert calls == 2
    assert photos.pool().size() >= due_soon
    assert photos.prefetch() == 0  # enough are waiting now


def test_it_fetches_nothing_for_jobs_due_later(settings):
    settings.UNSPLASH_ACCESS_KEY = ""
    for _ in range(5):
        services.job_create(delay_seconds=60)

    assert photos.prefetch() == 0
    assert photos.pool().size() == 0


def test_a_pass_that_made_all_its_calls_is_followed_by_another_at_once(monkeypatch):
    passes: list[float] = []
    made = [photos.REFILL_CALLS, photos.REFILL_CALLS, 1, 0]
    stopping = threading.Event()

    def prefetch() -> int:
        passes.append(0)
        if len(passes) == len(made):
            stopping.set()
        return made[len(passes) - 1]

    monkeypatch.setattr(photos, "prefetch", prefetch)
    monkeypatch.setattr(Prefetcher, "every", 0.3)
    prefetcher = Prefetcher(stopping)
    waits: list[float] = []
    wait = stopping.wait

    def recorded(timeout: float) -> bool:
        waits.append(timeout)
        return wait(timeout)

    monkeypatch.setattr(stopping, "wait", recorded)
    prefetcher.run()

    assert len(passes) == 4
    # The first pause; none after the two full passes; the pause after each short one.
    assert waits == [0.3, 0.0, 0.0, 0.3, 0.3]
