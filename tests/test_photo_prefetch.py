"""Photos are fetched ahead for jobs about to fall due, and only for them."""

from __future__ import annotations

from jobs import photo_source, services


def test_it_fetches_photos_ahead_for_jobs_falling_due(settings):
    settings.UNSPLASH_ACCESS_KEY = ""  # the offline demo source
    for _ in range(40):
        services.job_create(delay_seconds=5)

    calls = photo_source.prefetch()

    assert calls == 2
    assert photo_source.pool().size() >= 40
    assert photo_source.prefetch() == 0  # enough are waiting now


def test_it_fetches_nothing_for_jobs_due_later(settings):
    settings.UNSPLASH_ACCESS_KEY = ""
    for _ in range(5):
        services.job_create(delay_seconds=60)

    assert photo_source.prefetch() == 0
    assert photo_source.pool().size() == 0
