"""GET /metrics: every process's counts in one scrape, for staff or a token only."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from prometheus_client.parser import text_string_to_metric_families

from jobs import metrics, store
from tests.concurrency import said_by_a_child
from tests.django_process import PROJECT, environment, run_python

pytestmark = pytest.mark.django_db

TOKEN = "a-scraper-token-that-is-long-enough-0123"


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(body: bytes, name: str, **labels: str) -> float:
    return _samples(body).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_user("alice", is_staff=True))
    return client


def _scrape(client) -> bytes:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    return response.content


def _django_command(code: str) -> list[str]:
    return [sys.executable, "-c", f"import django; django.setup(); {code}"]


# --- what a scrape shows -----------------------------------------------------------


def test_counts_from_two_other_processes_add_up_in_one_scrape(staff_client, tmp_path):
    before = _value(_scrape(staff_client), "jobs_created_total")
    # Two processes, as web and worker are, writing into this process's directory.
    runs = [
        subprocess.Popen(
            _django_command(
                f"from jobs import metrics; [metrics.job_created() for _ in range({n})]"
            ),
            cwd=PROJECT,
            env=environment(tmp_path / f"data{n}", JOBS_METRICS_DIR=str(metrics.directory())),
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (3, 4)
    ]
    for run in runs:
        assert run.wait(timeout=60) == 0, run.stderr.read()

    assert _value(_scrape(staff_client), "jobs_created_total") == before + 7
    # Each wrote its own file; starting while this process held the directory
    # wiped nothing.
    names = [path.name for path in metrics.directory().glob("counter_*.db")]
    for run in runs:
        assert any(name.endswith(f"-{run.pid}.db") for name in names), names


def test_job_helpers_record_their_families(staff_client):
    before = _scrape(staff_client)

    metrics.job_finished("completed")
    metrics.job_finished("cancelled")
    metrics.job_started(-0.5)  # a hair early counts as on time
    metrics.job_started(3.0)
    metrics.batch_delivered(12)
    metrics.unsplash_call("rate_limited")
    metrics.rate_limit_wait()

    after = _scrape(staff_client)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("jobs_finished_total", status="completed") == 1
    assert grew("jobs_finished_total", status="cancelled") == 1
    assert grew("jobs_finished_total", status="failed") == 0
    assert grew("jobs_start_lateness_seconds_bucket", le="0.01") == 1
    assert grew("jobs_start_lateness_seconds_bucket", le="5.0") == 2
    assert grew("jobs_start_lateness_seconds_count") == 2
    assert grew("jobs_batch_size_bucket", le="10.0") == 0
    assert grew("jobs_batch_size_bucket", le="20.0") == 1
    assert grew("jobs_unsplash_calls_total", outcome="rate_limited") == 1
    assert grew("jobs_unsplash_rate_limit_waits_total") == 1


def test_a_batch_records_what_as_many_single_records_would(staff_client):
    """The gateway records a batch of creates at once; a scrape cannot tell the difference."""
    answered = [(202, 0.004), (202, 0.004), (429, 0.004), (202, 0.3)]
    before = _scrape(staff_client)
    for status, seconds in answered:
        metrics.http_request("singly", status, seconds)
        metrics.job_created()
    metrics.http_requests("together", [202, 202, 429], 0.004)
    metrics.http_requests("together", [202], 0.3)
    metrics.http_requests("together", [], 0.3)
    metrics.job_created(4)
    metrics.job_created(0)
    after = _scrape(staff_client)

    def grown(route: str) -> dict:
        """What the route's series grew by, keyed without the route label."""
        return {
            (name, tuple(label for label in labels if label[0] != "route")): (
                value - _samples(before).get((name, labels), 0.0)
            )
            for (name, labels), value in _samples(after).items()
            if ("route", route) in labels
        }

    singly = grown("singly")
    assert singly[("jobs_http_request_duration_seconds_count", ())] == 4
    assert singly[("jobs_http_requests_total", (("status", "429"),))] == 1
    assert grown("together") == pytest.approx(singly)
    assert _value(after, "jobs_created_total") - _value(before, "jobs_created_total") == 8


def test_observing_a_value_n_times_at_once_matches_n_observations():
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    registry = CollectorRegistry()
    singly = Histogram("singly", "", buckets=(0.1, 1, 10), registry=registry)
    together = Histogram("together", "", buckets=(0.1, 1, 10), registry=registry)
    for value, times in [(0.05, 3), (0.1, 2), (5, 1), (50, 4), (1, 0)]:
        for _ in range(times):
            singly.observe(value)
        metrics.observe_times(together, value, times)

    series: dict[str, dict] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                suffix = sample.name.removeprefix(family.name)
                series.setdefault(family.name, {})[(suffix, tuple(sample.labels.items()))] = (
                    sample.value
                )
    assert series["together"][("_count", ())] == 10
    assert series["together"] == pytest.approx(series["singly"])


def test_a_bad_label_is_logged_and_never_raised(staff_client):
    metrics.unsplash_call("no-such-outcome")
    metrics.job_finished("pending")

    body = _scrape(staff_client)
    assert b"no-such-outcome" not in body
    assert b'status="pending"' not in body


def test_queue_depth_is_read_from_the_broker_at_scrape_time(staff_client, monkeypatch):
    monkeypatch.setattr(metrics.QueueCollector, "max_age", 0)
    assert _value(_scrape(staff_client), "jobs_queue_messages", state="ready") == 0

    response = staff_client.post(
        "/api/jobs", data={"delay_seconds": 30}, content_type="application/json"
    )
    assert response.status_code == 202

    body = _scrape(staff_client)
    assert _value(body, "jobs_queue_messages", state="ready") == 1
    assert _value(body, "jobs_queue_messages", state="due") == 0
    assert _value(body, "jobs_queue_messages", state="leased") == 0
    assert _value(body, "jobs_queue_messages", state="dead") == 0


def test_scrapes_close_together_share_one_count_of_the_queue(staff_client, monkeypatch):
    calls = []

    class CountingBroker:
        def counts(self):
            calls.append(1)
            return {"ready": len(calls), "due": 0, "leased": 0, "dead": 0}

    broker = CountingBroker()
    monkeypatch.setattr(store, "broker", lambda: broker)
    monkeypatch.setattr(metrics.QueueCollector, "max_age", 60)

    first, second = _scrape(staff_client), _scrape(staff_client)

    assert len(calls) == 1
    assert _value(first, "jobs_queue_messages", state="ready") == 1
    assert _value(second, "jobs_queue_messages", state="ready") == 1


def test_the_other_families_are_served_when_the_queue_cannot_be_counted(staff_client, monkeypatch):
    def unreachable():
        raise ConnectionError("broker down")

    monkeypatch.setattr(store, "broker", unreachable)

    body = _scrape(staff_client)
    assert b"jobs_created_total" in body
    assert b"jobs_queue_messages{" not in body


def test_requests_are_labelled_by_route_never_by_path(staff_client):
    job_id = "01KB0000000000000000000000"
    before = _scrape(staff_client)

    assert staff_client.get(f"/api/jobs/{job_id}").status_code == 404
    assert staff_client.get("/api/config").status_code == 200

    after = _scrape(staff_client)
    assert job_id.encode() not in after
    detail = {"route": "job-detail", "status": "404"}
    assert _value(after, "jobs_http_requests_total", **detail) == (
        _value(before, "jobs_http_requests_total", **detail) + 1
    )
    config = {"route": "config", "status": "200"}
    assert _value(after, "jobs_http_requests_total", **config) == (
        _value(before, "jobs_http_requests_total", **config) + 1
    )
    assert _value(after, "jobs_http_request_duration_seconds_count", route="config") >= 1


def test_a_request_that_matches_no_route_is_labelled_unmatched(staff_client):
    before = _scrape(staff_client)
    assert staff_client.get("/static/no-such-file.css").status_code == 404

    labels = {"route": metrics.UNMATCHED_ROUTE, "status": "404"}
    assert _value(_scrape(staff_client), "jobs_http_requests_total", **labels) == (
        _value(before, "jobs_http_requests_total", **labels) + 1
    )


def test_a_metrics_failure_never_fails_the_request(client, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(metrics.HTTP_REQUESTS, "labels", broken)

    assert client.get("/api/config").status_code == 200


# --- who may scrape ----------------------------------------------------------------


def test_it_refuses_anyone_but_staff_by_default(client):
    assert client.get("/metrics").status_code == 403

    client.force_login(User.objects.create_user("bob"))
    assert client.get("/metrics").status_code == 403


def test_staff_get_the_prometheus_text_format(staff_client):
    response = staff_client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert response["Cache-Control"] == "no-store"
    assert b"# TYPE jobs_created_total counter" in response.content


def test_a_token_opens_it_to_a_scraper(client, settings):
    settings.JOBS_METRICS = "token"
    settings.JOBS_METRICS_TOKEN = TOKEN

    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
    wrong = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401

    allowed = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200
    assert b"jobs_created_total" in allowed.content


def test_open_mode_needs_no_login(client, settings):
    settings.JOBS_METRICS = "open"

    assert client.get("/metrics").status_code == 200


def test_off_mode_has_no_metrics_page(staff_client, settings):
    settings.JOBS_METRICS = "off"

    assert staff_client.get("/metrics").status_code == 404


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOBS_METRICS": "public"}, "JOBS_METRICS='public' is not one of staff, token, open"),
        ({"JOBS_METRICS": "token"}, "needs a JOBS_METRICS_TOKEN of at least 32 characters"),
        ({"JOBS_METRICS_TOKEN": "short"}, "needs a JOBS_METRICS_TOKEN of at least 32"),
        (
            {"JOBS_METRICS": "open", "JOBS_METRICS_TOKEN": TOKEN},
            "JOBS_METRICS_TOKEN is set but JOBS_METRICS=open",
        ),
    ],
    ids=["unknown mode", "token mode without token", "short token", "token ignored"],
)
def test_it_stops_on_a_bad_access_setting(tmp_path, env, message):
    result = run_python(
        "-c", "import django; django.setup()", env=environment(tmp_path / "data", **env)
    )

    assert result.returncode != 0
    assert message in result.stderr


# --- the directory of per-process files ----------------------------------------------


def test_the_directory_is_private_and_wiped_only_when_no_process_holds_it(tmp_path):
    path = tmp_path / "metrics"
    first = metrics.claim_directory(path)
    try:
        assert path.stat().st_mode & 0o777 == 0o700
        stale = path / "counter_host-1.db"
        stale.write_bytes(b"")

        # Another process starting while this one runs keeps its files.
        os.close(metrics.claim_directory(path))
        assert stale.exists()
    finally:
        os.close(first)

    # The first process to start after all have ended starts from zero.
    os.close(metrics.claim_directory(path))
    assert not stale.exists()


def test_a_forked_process_names_its_metric_files_by_its_own_pid():
    from jobs.metrics import process_identifier

    assert process_identifier().endswith(f"-{os.getpid()}")

    child, said = said_by_a_child(process_identifier)

    assert said.endswith(f"-{child}")
    assert process_identifier().endswith(f"-{os.getpid()}")
