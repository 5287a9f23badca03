"""Capacity: what the workers measure they can run is what admission lets fall due per second."""

from __future__ import annotations

import json

import pytest

from jobs import admission, backends, capacity, clock

pytestmark = pytest.mark.django_db


@pytest.fixture
def counters(monkeypatch):
    """The counters a cluster shares with its worker processes."""
    monkeypatch.setattr(capacity, "_shared", None)
    capacity.share()
    return capacity


def _beat(worker: str, *, at: float, **details) -> None:
    backends.heartbeats().beat(worker, {"at": at, **details})


def _create(client, delay: int = 30):
    return client.post(
        "/api/jobs", data=json.dumps({"delay_seconds": delay}), content_type="application/json"
    )


def test_a_cluster_runs_as_many_jobs_a_second_as_its_workers_in_their_busy_time(counters):
    meter = capacity.Meter(workers=2, batch_size=50)
    capacity.record(50, 0.1)  # one worker process: 50 jobs in 0.1 s of work
    capacity.record(50, 0.1)

    assert meter.read() == pytest.approx(1000.0)  # 2 workers x 500 jobs per busy second


def test_the_capacity_is_that_of_full_batches_whatever_the_batches_seen(counters):
    # Each batch costs 10 ms, and each job 1 ms: small batches run 90 jobs a
    # second, full ones (50) 833.
    meter = capacity.Meter(workers=1, batch_size=50)
    for jobs in (1, 2, 5, 3, 10, 1, 4):
        capacity.record(jobs, 0.010 + 0.001 * jobs)

    assert meter.read() == pytest.approx(50 / (0.010 + 0.050))


def test_too_few_jobs_since_the_last_beat_keep_the_last_reading(counters):
    meter = capacity.Meter(workers=1, batch_size=50)
    assert meter.read() is None
    capacity.record(capacity.MIN_JOBS - 1, 0.5)
    assert meter.read() is None

    capacity.record(100, 0.5)  # together with the earlier ones

    assert meter.read() == pytest.approx((capacity.MIN_JOBS + 99) / 1.0)


def test_readings_are_smoothed(counters):
    meter = capacity.Meter(workers=1, batch_size=50)
    capacity.record(100, 1.0)
    first = meter.read()
    capacity.record(100, 0.1)  # suddenly ten times faster

    assert first < meter.read() < 1000
    assert meter.read() == pytest.approx(100 + capacity.SMOOTHING * 900)


def test_outside_a_cluster_nothing_is_counted(monkeypatch):
    monkeypatch.setattr(capacity, "_shared", None)
    capacity.record(100, 0.1)

    assert capacity.Meter(workers=2, batch_size=50).read() is None


def test_the_capacity_is_the_sum_of_the_clusters_that_beat_recently(now, settings):
    settings.JOBS_HEARTBEAT_MAX_AGE = 30
    _beat("a", at=now(), capacity=400.0)
    _beat("b", at=now() - 5, capacity=350.5)
    _beat("gone", at=now() - 31, capacity=9999)
    _beat("unmeasured", at=now(), capacity=None)
    _beat("odd", at=now(), capacity=True)

    assert capacity.measured() == pytest.approx(750.5)


def test_before_any_measure_admission_counts_on_the_start_capacity(now, settings):
    settings.JOBS_MAX_DUE_PER_SECOND = "auto"
    settings.JOBS_START_CAPACITY = 250

    assert capacity.measured() is None
    assert admission.due_limit() == 250


def test_admission_lets_fall_due_in_one_second_what_the_workers_can_run(client, now, settings):
    settings.JOBS_MAX_DUE_PER_SECOND = "auto"
    settings.JOBS_START_CAPACITY = 1
    _beat("cluster", at=clock.now(), capacity=10.0)
    admission.reset()

    answers = [_create(client).status_code for _ in range(12)]

    allowed = int(admission.HEADROOM * 10)  # a share of the measured capacity
    assert answers[:allowed] == [202] * allowed
    assert set(answers[allowed:]) == {503}
    assert _create(client, delay=60).status_code == 202  # another second has room


def test_health_and_the_admin_panel_show_the_capacity(client, admin_client, now, settings):
    settings.JOBS_MAX_DUE_PER_SECOND = "auto"
    _beat("cluster", at=clock.now(), capacity=812.4)
    admission.reset()

    backlog = client.get("/api/health").json()["backlog"]
    panel = admin_client.get("/admin/jobs/job/").content.decode()

    assert backlog["capacity_per_second"] == 812.4
    assert backlog["max_due_per_second"] == int(admission.HEADROOM * 812.4)
    assert "812 jobs/s" in panel
