"""Photos are fetched ahead for jobs about to fall due, and only for them."""

from __future__ import annotations

from jobs import photos, services
from jobs.photos import BATCH_SIZE


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
