"""Backpressure: creates beyond what can run on time are refused quickly, the rest run on time."""

from __future__ import annotations

import json

import pytest

from jobs import admission, store

pytestmark = [pytest.mark.django_db, pytest.mark.both_servers]


@pytest.fixture
def limits(settings, now):
    # The jobs' clock stands still: every create of a test is due in the same second.
    def set_limits(*, per_second: int = 0, lateness: int = 0) -> None:
        settings.JOBS_MAX_DUE_PER_SECOND = per_second
        settings.JOBS_MAX_LATENESS = lateness
        admission.reset()

    return set_limits


def _create(client, delay: int = 30, **headers):
    return client.post(
        "/api/jobs",
        data=json.dumps({"delay_seconds": delay}),
        content_type="application/json",
        headers=headers,
    )


def test_jobs_beyond_the_capacity_of_their_second_are_refused_with_retry_after(client, limits):
    limits(per_second=3)

    answers = [_create(client) for _ in range(5)]

    assert [answer.status_code for answer in answers][:3] == [202, 202, 202]
    refused = [answer for answer in answers if answer.status_code == 503]
    assert refused, [answer.status_code for answer in answers]
    problem = refused[0]
    assert problem["Content-Type"] == "application/problem+json"
    assert problem["Retry-After"] == "1"
    assert problem.json()["type"] == "/api/problems/overloaded"
    assert "due" in problem.json()["detail"]
    # Nothing was stored for a refused create.
    assert sum(1 for _ in store.repository().entries()) == 3


def test_jobs_due_in_another_second_are_not_refused(client, limits):
    limits(per_second=2)
    assert [_create(client, delay=30).status_code for _ in range(2)] == [202, 202]

    assert _create(client, delay=60).status_code == 202


def test_the_count_reads_the_queue_so_another_process_creates_count_too(client, limits):
    limits(per_second=2)
    from filestore.ids import new_id
    from jobs import clock
    from jobs.queueing import enqueue_job

    due = clock.now() + 30
    for _ in range(2):  # as if another web process had accepted them
        enqueue_job(new_id(), due_at=due)

    assert _create(client, delay=30).status_code == 503


class _Counts:
    """What the queue holds for one due second, as other processes fill it."""

    def __init__(self) -> None:
        self.value = 0
        self.reads = 0

    def scheduled_around(self, moment: float) -> int:
        self.reads += 1
        return self.value


def _admission_over(monkeypatch, counts: _Counts, clock: list[float]) -> admission.Admission:
    monkeypatch.setattr(store, "broker", lambda: counts)
    return admission.Admission(clock=lambda: clock[0])


def _counting_gate(settings, monkeypatch, *, limit: int):
    """An admission with ``limit`` jobs a second and no lateness rule, over a queue
    the test fills (``counts``) and a clock it moves (``clock[0]``)."""
    settings.JOBS_MAX_DUE_PER_SECOND = limit
    settings.JOBS_MAX_LATENESS = 0
    counts, clock = _Counts(), [0.0]
    return _admission_over(monkeypatch, counts, clock), counts, clock


def test_a_count_far_from_the_limit_serves_a_quarter_second(settings, monkeypatch):
    gate, counts, clock = _counting_gate(settings, monkeypatch, limit=100)

    for step in range(20):
        clock[0] = step * 0.01
        gate.admit(due_at=1_000_030.5)

    assert counts.reads == 1


def test_a_count_this_process_adds_little_to_serves_up_to_a_second(settings, monkeypatch):
    # Jobs with many different delays: each due second gets a few of this process's creates.
    gate, counts, clock = _counting_gate(settings, monkeypatch, limit=1000)
    quiet = int(admission.QUIET_SHARE * 1000)

    for step in range(quiet - 1):
        clock[0] = step * (admission.QUIET_TTL / quiet)
        gate.admit(due_at=1_000_030.5)
    assert counts.reads == 1

    clock[0] = admission.QUIET_TTL
    gate.admit(due_at=1_000_030.5)
    assert counts.reads == 2


def test_a_count_this_process_adds_much_to_is_read_again_after_a_quarter_second(
    settings, monkeypatch
):
    gate, counts, clock = _counting_gate(settings, monkeypatch, limit=1000)
    for _ in range(int(admission.QUIET_SHARE * 1000)):
        gate.admit(due_at=1_000_030.5)

    counts.value = 1000  # other processes filled the second meanwhile
    clock[0] = admission.COUNT_TTL

    with pytest.raises(admission.Overloaded):
        gate.admit(due_at=1_000_030.5)
    assert counts.reads == 2


def test_a_count_near_the_limit_is_read_again_soon_so_other_processes_creates_count(
    settings, monkeypatch
):
    gate, counts, clock = _counting_gate(settings, monkeypatch, limit=100)
    counts.value = 90  # another process filled the second nearly up
    gate.admit(due_at=1_000_030.5)

    counts.value = 100  # ... and then up to the limit
    clock[0] = admission.NEAR_TTL

    with pytest.raises(admission.Overloaded):
        gate.admit(due_at=1_000_030.5)
    assert counts.reads == 2


def test_near_the_limit_a_count_this_process_adds_little_to_is_not_read_at_every_create(
    settings, monkeypatch
):
    gate, counts, clock = _counting_gate(settings, monkeypatch, limit=1000)
    counts.value = 950  # nearly full, filled slowly by jobs created over many seconds
    quiet = int(admission.QUIET_SHARE * 1000)

    for step in range(quiet):
        clock[0] = step * 2 * admission.NEAR_TTL
        gate.admit(due_at=1_000_030.5)
    assert counts.reads == 1

    clock[0] += 2 * admission.NEAR_TTL
    gate.admit(due_at=1_000_030.5)
    assert counts.reads == 2


def test_creates_are_refused_while_the_worker_is_behind(client, limits, monkeypatch):
    limits(lateness=2)
    monkeypatch.setattr(type(store.broker()), "oldest_due_lateness", lambda self: 2.5)

    answer = _create(client)

    assert answer.status_code == 503
    assert answer["Retry-After"] == "2"
    assert "behind" in answer.json()["detail"]


def test_a_replay_is_answered_even_under_overload(client, limits):
    limits(per_second=1)
    first = _create(client, **{"Idempotency-Key": "replay-me"})
    assert first.status_code == 202
    assert _create(client).status_code == 503  # the second is full

    replay = _create(client, **{"Idempotency-Key": "replay-me"})

    assert replay.status_code == 202
    assert replay.json()["id"] == first.json()["id"]


def test_a_refused_keyed_create_leaves_its_key_free_for_the_retry(client, limits):
    limits(per_second=1)
    assert _create(client).status_code == 202
    refused = _create(client, **{"Idempotency-Key": "later"})
    assert refused.status_code == 503

    limits(per_second=0)
    retried = _create(client, **{"Idempotency-Key": "later"})

    assert retried.status_code == 202


def test_health_reports_the_backlog_and_whether_creates_are_refused(client, limits, monkeypatch):
    limits(lateness=2)
    monkeypatch.setattr(type(store.broker()), "oldest_due_lateness", lambda self: 3.25)

    backlog = client.get("/api/health").json()["backlog"]

    assert backlog["oldest_due_lateness_seconds"] == 3.25
    assert backlog["refusing_creates"] is True
    assert backlog["max_lateness_seconds"] == 2


def test_the_admin_queue_panel_shows_refusals_and_quarantined_files(admin_client, limits, data_dir):
    limits(lateness=2)
    quarantine = data_dir / "quarantine"
    quarantine.mkdir(exist_ok=True)
    (quarantine / "01JABCDEFGHJKMNPQRSTVWXYZ0_pending.json.1").write_text("{")
    from jobs import operations

    status = operations.queue_status()
    page = admin_client.get("/admin/jobs/job/").content.decode()

    assert status.quarantined_files == 1
    assert "1 unreadable file moved to" in page


class _Behind(_Counts):
    """The queue's counts, and the workers behind or not."""

    behind = False

    def oldest_due_lateness(self) -> float:
        return 5.0 if self.behind else 0.0


def _refusing(settings, monkeypatch, *, start: int, measured: float | None = None):
    settings.JOBS_MAX_DUE_PER_SECOND = "auto"
    settings.JOBS_START_CAPACITY = start
    settings.JOBS_MAX_LATENESS = 1
    monkeypatch.setattr(admission.capacity, "measured", lambda: measured)
    counts, clock = _Behind(), [0.0]
    return _admission_over(monkeypatch, counts, clock), counts, clock


def _offer(gate, counts: _Counts, clock: list[float], creates: int, at: float) -> int:
    """Offer ``creates`` over the second from ``at``, each due 30 s later; how many
    were admitted (and queued: counted in their second)."""
    admitted = 0
    counts.value = 0  # a second of due times no create has reached yet
    for index in range(creates):
        clock[0] = at + index / creates
        try:
            gate.admit(due_at=1_000_030.5 + at)
        except admission.Overloaded:
            continue
        admitted += 1
        counts.value += 1
    return admitted


def test_before_any_measure_refusals_take_their_cost_from_the_start_capacity(settings, monkeypatch):
    gate, counts, clock = _refusing(settings, monkeypatch, start=1000)
    whole = int(admission.HEADROOM * 1000)
    assert gate.limit() == whole

    # A stream well beyond the limit: the first second admits the start limit...
    assert _offer(gate, counts, clock, 3 * whole, at=0.0) == whole
    # ...and the next ones less: 2 refused per admitted, each a tenth of a job.
    expected = int(admission.HEADROOM * 1000 / (1 + admission.REFUSAL_COST * 2))
    assert _offer(gate, counts, clock, 3 * whole, at=1.0) == expected < whole
    # More refused per admitted in that second: lower still, towards where the
    # admitted and the refusals' cost fill the start limit.
    _offer(gate, counts, clock, 1, at=2.0)
    cost = admission.REFUSAL_COST
    settled = (admission.HEADROOM * 1000 - cost * 3 * whole) / (1 - cost)
    assert settled < gate.limit() < expected


def test_a_stream_below_the_start_limit_is_admitted_whole(settings, monkeypatch):
    # A steady 1,000 jobs/s on a fresh system must not be refused before the
    # workers measure: with nothing refused, the start limit stands.
    gate, counts, clock = _refusing(settings, monkeypatch, start=1300)
    admitted = [_offer(gate, counts, clock, 1000, at=float(second)) for second in range(5)]

    assert admitted == [1000] * 5
    assert gate.limit() == int(admission.HEADROOM * 1300) > 1000


def test_refusals_halve_the_start_limit_at_most(settings, monkeypatch):
    gate, counts, clock = _refusing(settings, monkeypatch, start=1000)
    counts.behind = True
    for index in range(500):  # the workers are behind: everything is refused
        clock[0] = index / 500
        with pytest.raises(admission.Overloaded):
            gate.admit(due_at=1_000_030.5)
    counts.behind = False
    _offer(gate, counts, clock, 1, at=1.0)

    assert gate.limit() == int(admission.HEADROOM * 1000 / 2)


def test_once_measured_refusals_take_their_cost_from_the_measured_capacity(settings, monkeypatch):
    # Refused creates share the cores with the jobs admitted, however the
    # capacity was found: the share admitted falls as more are refused.
    gate, counts, clock = _refusing(settings, monkeypatch, start=1000, measured=500.0)
    assert gate.limit() == int(admission.HEADROOM * 500)

    admitted = _offer(gate, counts, clock, 3 * gate.limit(), at=0.0)
    _offer(gate, counts, clock, 1, at=1.0)

    refused_per_admitted = (3 * admitted - admitted) / admitted
    share = admission.HEADROOM / (1 + admission.REFUSAL_COST * refused_per_admitted)
    assert gate.limit() == int(share * 500)
    assert 0.7 < share < 0.8


def test_after_a_quiet_gap_the_start_limit_is_whole_again(settings, monkeypatch):
    gate, counts, clock = _refusing(settings, monkeypatch, start=1000)
    _offer(gate, counts, clock, 2400, at=0.0)
    _offer(gate, counts, clock, 1, at=1.0)
    assert gate.limit() < int(admission.HEADROOM * 1000)

    _offer(gate, counts, clock, 1, at=5.0)

    assert gate.limit() == int(admission.HEADROOM * 1000)
