"""The page converges by itself after its connection to the server breaks.

Each test breaks the connection in one way, changes jobs on the server
while the page cannot hear of it, and requires the page to show the
server's state within 5 s of the connection being back. The page is not
reloaded and nothing in it is clicked: it must reconcile on its own.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e_fixtures import (  # noqa: F401 (fixtures)
    browser_fixture,
    fake_fixture,
    page_fixture,
    proxied_page_fixture,
    proxy_fixture,
    row,
    system_fixture,
    wait_until,
)
from tests.system import wait_for

pytestmark = pytest.mark.e2e

# How long after the connection is back the page may take to show the truth.
CONVERGE_SECONDS = 5


def mode(page) -> str | None:
    return page.get_by_test_id("connection-status").get_attribute("data-mode")


def wait_for_stream(page, proxy=None) -> None:
    wait_for(
        lambda: mode(page) == "stream" and (proxy is None or proxy.streams_open() > 0),
        timeout=20,
        message="the page's event stream open",
    )


def create(system, delay: int) -> str:
    status, job = system.request("POST", "/api/jobs", {"delay_seconds": delay})
    assert status == 202
    return job["id"]


def wait_completed_on_server(system, ids: list[str]) -> None:
    def done() -> bool:
        statuses = {job["id"]: job["status"] for job in system.jobs()}
        return all(statuses.get(job_id) == "completed" for job_id in ids)

    wait_for(done, timeout=60, message="the jobs completed on the server")


def shows_completed(page, ids: list[str]):
    return lambda: all(row(page, job_id, "completed").count() == 1 for job_id in ids)


def test_a_stream_cut_while_the_api_answers_misses_nothing(proxied_page, proxy, system):
    page = proxied_page
    wait_for_stream(page, proxy)

    # A short cut: the browser reconnects the stream by itself a few seconds
    # later; the job runs and completes in between.
    proxy.cut_streams()
    cut = time.monotonic()
    job_id = create(system, 1)
    wait_until(
        cut + CONVERGE_SECONDS, shows_completed(page, [job_id]), "the job completed in the page"
    )

    # A long cut: the stream is refused, the API still answers, so the page
    # polls and still shows what happens.
    wait_for_stream(page, proxy)
    proxy.cut_streams(refuse=True)
    polled = create(system, 1)
    wait_for(shows_completed(page, [polled]), timeout=20, message="the job shown by polling alone")
    assert mode(page) == "polling"

    # The stream is let through again: the page goes back to it, and keeps up.
    proxy.allow_streams()
    wait_for_stream(page, proxy)
    streamed = create(system, 1)
    back = time.monotonic()
    wait_until(
        back + 1 + CONVERGE_SECONDS,
        shows_completed(page, [streamed]),
        "the job completed in the page over the stream",
    )


def test_the_page_converges_after_the_server_restarts_twice_quickly(page, system):
    wait_for_stream(page)
    system.stop()
    system.start()
    # Created in the short while the server is up, due while it is down again.
    first = create(system, 2)
    system.stop()
    system.start()
    second = create(system, 1)
    wait_completed_on_server(system, [first, second])
    done = time.monotonic()
    wait_until(
        done + CONVERGE_SECONDS,
        shows_completed(page, [first, second]),
        "both jobs completed in the page",
    )
    assert page.get_by_test_id("connection-status").get_attribute("data-state") == "online"


def test_after_a_sleep_with_no_events_then_a_burst_the_page_shows_every_job(
    proxied_page, proxy, system
):
    page = proxied_page
    wait_for_stream(page, proxy)

    # Asleep: the page's connections are silently dead, nothing reaches it,
    # and meanwhile the server creates and completes a burst of jobs.
    proxy.freeze()
    burst = [create(system, 1) for _ in range(20)]
    wait_completed_on_server(system, burst)

    proxy.wake()
    woke = time.monotonic()
    wait_until(
        woke + CONVERGE_SECONDS, shows_completed(page, burst), "every job of the burst completed"
    )
    wait_for_stream(page, proxy)
