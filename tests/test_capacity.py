"""Capacity: what the workers measure they can run is what admission lets fall due per second."""

from __future__ import annotations

import json

import pytest

from jobs import admission, backends, capacity, clock
from jobsite.machine_load import MachineLoad

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


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _meter(ticks: Ticks, *, start: float = 400) -> capacity.Meter:
    return capacity.Meter(start=start, share_admitted=0.8, clock=ticks)


def _beat_after(meter: capacity.Meter, ticks: Ticks, *, jobs: int, behind: bool) -> float | None:
    capacity.record(jobs)
    ticks.now += 2.0
    return meter.read(behind=behind)


def test_while_jobs_wait_the_jobs_run_a_second_are_the_capacity(counters):
    ticks = Ticks()
    meter = _meter(ticks)

    assert _beat_after(meter, ticks, jobs=900, behind=True) == pytest.approx(450)
    # Lower: taken at once, jobs are late already.
    assert _beat_after(meter, ticks, jobs=700, behind=True) == pytest.approx(350)
    # Higher: smoothed, half of the new reading.
    assert _beat_after(meter, ticks, jobs=900, behind=True) == pytest.approx(400)


def test_keeping_up_far_below_the_limit_says_nothing_new(counters):
    ticks = Ticks()
    meter = _meter(ticks)

    assert _beat_after(meter, ticks, jobs=200, behind=False) is None  # 100 jobs/s of 400
    assert _beat_after(meter, ticks, jobs=0, behind=False) is None


def test_keeping_up_close_to_the_limit_lets_the_capacity_grow(counters):
    ticks = Ticks()
    meter = _meter(ticks)

    # 300 jobs/s, close to the 320 admission lets in of 400: keep up, grow.
    first = _beat_after(meter, ticks, jobs=600, behind=False)
    second = _beat_after(meter, ticks, jobs=600, behind=False)

    assert first == pytest.approx(400 * capacity.GROWTH)
    assert second == pytest.approx(400 * capacity.GROWTH**2)
    # Falling behind brings it down to what ran.
    assert _beat_after(meter, ticks, jobs=500, behind=True) < second


def test_keeping_up_on_a_busy_machine_projects_what_all_of_it_would_run(counters):
    ticks = Ticks()
    meter = _meter(ticks)

    def beat(per_second: int, busy: float) -> float | None:
        capacity.record(2 * per_second)  # keeping up, close to what is let in
        ticks.now += 2.0
        return meter.read(behind=False, busy=busy)

    # 300 jobs/s kept the cores 60 % busy: all of them would run 500; halfway there.
    assert beat(300, 0.6) == pytest.approx(450)
    # A projection far above (1,360) moves at most MOST_STEP up per beat, halfway.
    step = capacity.MOST_STEP * 450
    assert beat(340, capacity.LEAST_BUSY) == pytest.approx(450 + capacity.SMOOTHING * (step - 450))
    before = meter.capacity
    # Cores busier than the figure says: it comes down (halfway) before anything is late.
    assert beat(380, 0.95) == pytest.approx(before + capacity.SMOOTHING * (400 - before))
    # Too idle a machine says nothing: back to growing by GROWTH.
    current = meter.capacity
    assert beat(330, capacity.LEAST_BUSY / 2) == pytest.approx(current * capacity.GROWTH)


def test_admitting_less_while_refusing_still_counts_as_running_close_to_the_limit(counters):
    # Under a stream far beyond the limit admission lets in less than its
    # share (the refusals' cost): the workers keep up with what it lets in,
    # and the machine's load still says what they could run.
    ticks = Ticks()
    meter = capacity.Meter(start=1000, share_admitted=admission.HEADROOM, clock=ticks)
    let_in = admission.HEADROOM / (1 + admission.REFUSAL_COST * 2.4) * 1000
    assert 720 < let_in < 730

    capacity.record(2 * 725)
    ticks.now += 2.0

    assert meter.read(behind=False, busy=0.8) == pytest.approx(
        1000 + capacity.SMOOTHING * (725 / 0.8 - 1000)
    )


def test_the_machine_load_is_the_busy_share_of_every_core_between_readings(tmp_path):
    stat = tmp_path / "stat"

    def write(user: int, system: int, idle: int, iowait: int) -> None:
        stat.write_text(f"cpu  {user} 0 {system} {idle} {iowait} 0 0 0 0 0\ncpu0 1 2 3 4\n")

    load = MachineLoad(str(stat))
    write(100, 50, 800, 50)
    assert load.read() is None  # nothing to compare with yet
    write(160, 80, 850, 60)  # 90 busy of 150
    assert load.read() == pytest.approx(0.6)
    write(160, 80, 850, 60)  # no time passed
    assert load.read() is None
    stat.write_text("cpu  garbage\n")
    assert load.read() is None
    assert MachineLoad(str(tmp_path / "missing")).read() is None


def test_outside_a_cluster_nothing_is_counted(monkeypatch):
    monkeypatch.setattr(capacity, "_shared", None)
    capacity.record(100)

    assert capacity.Meter(start=400, share_admitted=0.8).read(behind=True) is None


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
    assert admission.due_limit() == int(admission.HEADROOM * 250)


def test_the_limit_does_not_drop_when_the_first_measure_comes(counters, now, settings):
    """Jobs arriving steadily below the start limit are not refused once the
    workers have measured (the meter grows from the start capacity)."""
    settings.JOBS_MAX_DUE_PER_SECOND = "auto"
    settings.JOBS_START_CAPACITY = 400
    before = admission.due_limit()
    ticks = Ticks()
    meter = capacity.Meter(start=400, share_admitted=admission.HEADROOM, clock=ticks)

    measure = _beat_after(meter, ticks, jobs=2 * before, behind=False)  # all that was let in
    _beat("cluster", at=clock.now(), capacity=measure)
    capacity.reset()

    assert admission.due_limit() >= before


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


@pytest.mark.parametrize(
    ("gather", "waited", "behind"), [(0.1, 0.3, False), (0.1, 0.4, True), (0.0, 0.3, True)]
)
def test_due_jobs_waiting_out_the_gathering_window_do_not_count_as_behind(
    settings, monkeypatch, gather, waited, behind
):
    # Jobs falling due one by one wait up to JOBS_GATHER_MS on purpose: a
    # wait that long is the batching, not workers short of time.
    from jobs import store, worker

    settings.JOBS_GATHER_SECONDS = gather
    monkeypatch.setattr(type(store.broker()), "oldest_due_lateness", lambda self: waited)

    assert worker._behind() is behind
