"""The Jobs section of the admin: staff only, lists, details, actions, queue health."""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django_q.models import Failure, OrmQ, Schedule, Success

from jobs import admin_views, clock, health, services, store, tasks
from jobs.errors import JobNotFound
from jobs.model import STAFF_ACTIONS

pytestmark = pytest.mark.django_db

LIST_URL = "/admin/jobs/job/"
BULK_URL = "/admin/jobs/job/actions/"


# --- fixtures and helpers -----------------------------------------------------------


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("alice", is_staff=True)


@pytest.fixture
def staff_client(client, staff) -> Client:
    client.force_login(staff)
    return client


@pytest.fixture
def csrf_client(staff) -> Client:
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(staff)
    return checked


def new_job(delay: int = 5) -> str:
    return services.job_create(delay_seconds=delay).job["id"]


def completed_job(move_clock) -> str:
    job_id = new_job()
    move_clock(10)
    assert tasks.run_jobs([job_id])[0] == "completed"
    return job_id


def failed_job() -> str:
    job_id = new_job()
    tasks.dead_letter(job_id, b"")
    return job_id


def status_of(job_id: str) -> str | None:
    try:
        return services.job_get(job_id=job_id).status
    except JobNotFound:
        return None


def csrf_token_from(response) -> str:
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', response.content)
    assert match, "the page has no form with a CSRF token"
    return match.group(1).decode()


def row_ids(response) -> list[str]:
    return [row["id"] for row in response.context["rows"]]


# --- access --------------------------------------------------------------------------


def admin_urls(job_id: str) -> list[str]:
    return [
        "/admin/jobs/",
        LIST_URL,
        f"{LIST_URL}{job_id}/",
        f"{LIST_URL}{job_id}/cancel/",
        BULK_URL,
    ]


def test_it_sends_anonymous_users_to_the_login_page(client):
    job_id = new_job()
    for url in admin_urls(job_id):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next="), url
    response = client.post(f"{LIST_URL}{job_id}/cancel/", {"post": "yes"})
    assert response.status_code == 302
    assert status_of(job_id) == "pending"


def test_it_refuses_users_who_are_not_staff(client):
    client.force_login(User.objects.create_user("bob"))
    job_id = new_job()
    for url in admin_urls(job_id):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url
    client.post(f"{LIST_URL}{job_id}/cancel/", {"post": "yes"})
    client.post(BULK_URL, {"action": "delete", "_selected_action": [job_id], "post": "yes"})
    assert status_of(job_id) == "pending"


def test_the_admin_index_has_a_jobs_entry_and_no_django_q_tables(staff_client):
    response = staff_client.get("/admin/")
    assert response.status_code == 200
    assert f'href="{LIST_URL}"'.encode() in response.content
    assert b'href="/admin/jobs/"' in response.content
    for model in (Success, Failure, Schedule, OrmQ):
        assert not admin.site.is_registered(model)
    assert b"django_q" not in response.content


def test_the_jobs_app_index_links_to_the_list(staff_client):
    response = staff_client.get("/admin/jobs/")
    assert response.status_code == 200
    assert f'href="{LIST_URL}"'.encode() in response.content


# --- list ----------------------------------------------------------------------------


def test_the_list_shows_jobs_newest_first_with_counts_and_thumbnails(staff_client, move_clock):
    done = completed_job(move_clock)
    cancelled = new_job()
    services.job_cancel(job_id=cancelled)
    pending = new_job()

    response = staff_client.get(LIST_URL)

    assert response.status_code == 200
    assert row_ids(response) == [pending, cancelled, done]
    counts = {choice["label"]: choice["count"] for choice in response.context["status_choices"]}
    assert counts == {
        "All": 3,
        "Pending": 1,
        "Running": 0,
        "Completed": 1,
        "Failed": 0,
        "Cancelled": 1,
    }
    thumb = services.job_get(job_id=done).result["urls"]["thumb"]
    assert f'src="{thumb}"'.encode() in response.content
    assert response.content.count(b'class="job-thumb"') == 1
    assert b"Pending (1)" in response.content


def test_the_list_offers_every_staff_action(staff_client):
    new_job()
    response = staff_client.get(LIST_URL)
    assert [action.name for action in response.context["actions"]] == list(STAFF_ACTIONS)
    for name in STAFF_ACTIONS:
        assert f'<option value="{name}">'.encode() in response.content


def test_the_list_filters_by_status(staff_client):
    pending = new_job()
    failed = failed_job()

    response = staff_client.get(LIST_URL, {"status": "failed"})

    assert row_ids(response) == [failed]
    assert pending not in response.content.decode()


def test_an_unknown_status_shows_every_job_and_says_so(staff_client):
    job_id = new_job()
    response = staff_client.get(LIST_URL, {"status": "lost"})
    assert row_ids(response) == [job_id]
    assert b"Unknown status" in response.content


def test_the_list_finds_a_job_by_its_id_or_a_prefix(staff_client):
    first, second = new_job(), new_job()

    exact = staff_client.get(LIST_URL, {"q": first})
    assert row_ids(exact) == [first]

    common = next(i for i in range(26, 0, -1) if first[:i] == second[:i])
    both = staff_client.get(LIST_URL, {"q": first[:common].lower()})
    assert row_ids(both) == [second, first]

    one = staff_client.get(LIST_URL, {"q": second[: common + 1]})
    assert row_ids(one) == [second]


def test_a_search_that_is_not_an_id_says_what_to_type(staff_client):
    new_job()
    response = staff_client.get(LIST_URL, {"q": "../etc"})
    assert row_ids(response) == []
    assert b"Search by job id" in response.content


def test_the_list_pages_older_and_back_newer(staff_client, monkeypatch):
    monkeypatch.setattr(admin_views, "PAGE_SIZE", 2)
    ids = [new_job() for _ in range(5)][::-1]  # newest first

    first = staff_client.get(LIST_URL)
    assert row_ids(first) == ids[0:2]
    assert first.context["newer_url"] is None

    second = staff_client.get(first.context["older_url"])
    assert row_ids(second) == ids[2:4]

    third = staff_client.get(second.context["older_url"])
    assert row_ids(third) == ids[4:5]
    assert third.context["older_url"] is None

    newest = new_job()  # a job created meanwhile does not shift the older pages
    back = staff_client.get(third.context["newer_url"])
    assert row_ids(back) == ids[2:4]
    first_again = staff_client.get(back.context["newer_url"])
    assert row_ids(first_again) == [newest, ids[0]]
    assert first_again.context["newer_url"] is None


# --- detail ----------------------------------------------------------------------------


def test_the_detail_page_shows_timeline_result_raw_file_and_queue_state(staff_client, move_clock):
    job_id = completed_job(move_clock)
    job = services.job_get(job_id=job_id)

    response = staff_client.get(f"{LIST_URL}{job_id}/")

    assert response.status_code == 200
    events = [entry["event"] for entry in response.context["timeline"]]
    assert events == ["Created", "Due", "Started", "Completed"]
    path = store.repository().path_for(job_id, "completed")
    assert str(path).encode() in response.content
    assert json.loads(response.context["raw_json"]) == job.to_document()
    assert job.result["urls"]["small"].encode() in response.content
    # run_jobs was called directly, so the job's queue message is still there.
    [message] = response.context["queue_messages"]
    assert message["state"] == "ready"
    assert b"due at" in response.content


def test_the_detail_page_shows_each_failed_attempt_with_its_error(staff_client, move_clock):
    job_id = new_job()
    move_clock(10)
    tasks.dead_letter(job_id, b"")

    response = staff_client.get(f"{LIST_URL}{job_id}/")

    failed = [entry for entry in response.context["timeline"] if entry["kind"] == "failed"]
    assert len(failed) == 1
    assert "could not finish this job" in failed[0]["detail"]
    actions = [item["action"].name for item in response.context["actions"]]
    assert actions == ["retry", "delete"]


def test_an_unknown_or_malformed_job_id_leads_back_to_the_list(staff_client):
    for job_id in ("01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-an-id"):
        response = staff_client.get(f"{LIST_URL}{job_id}/", follow=True)
        assert response.redirect_chain[-1][0] == LIST_URL
        assert b"does not exist" in response.content


# --- actions ------------------------------------------------------------------------


def test_retry_asks_first_and_changes_the_job_only_on_post(staff_client, move_clock, caplog):
    job_id = failed_job()
    url = f"{LIST_URL}{job_id}/retry/"

    confirmation = staff_client.get(url)
    assert confirmation.status_code == 200
    assert b"Are you sure you want to retry" in confirmation.content
    staff_client.get(url, {"post": "yes"})
    assert status_of(job_id) == "failed"

    move_clock(100)
    with caplog.at_level(logging.INFO, logger="jobs.operations"):
        response = staff_client.post(url, {"post": "yes"}, follow=True)

    job = services.job_get(job_id=job_id)
    assert job.status == "pending"
    assert clock.from_iso(job.run_at) == pytest.approx(clock.now(), abs=0.01)
    due = [m.due_at for m in store.broker().find(job_id) if m.state == "ready"]
    assert clock.now() in [pytest.approx(at, abs=0.01) for at in due]
    assert response.redirect_chain[-1][0] == f"{LIST_URL}{job_id}/"
    assert f"Job {job_id} was retried.".encode() in response.content
    assert f"Staff user alice retried job {job_id}" in caplog.text


def test_a_cancelled_job_stays_cancelled_when_its_message_arrives(staff_client, move_clock):
    job_id = new_job()

    staff_client.post(f"{LIST_URL}{job_id}/cancel/", {"post": "yes"})
    assert status_of(job_id) == "cancelled"

    move_clock(10)
    assert tasks.run_jobs([job_id])[0] == "already cancelled"
    job = services.job_get(job_id=job_id)
    assert job.status == "cancelled"
    assert job.result is None


def test_delete_removes_the_file_and_the_queue_messages(staff_client):
    job_id = new_job()
    path = store.repository().path_for(job_id, "pending")
    assert path.exists()
    assert store.broker().find(job_id)

    response = staff_client.post(f"{LIST_URL}{job_id}/delete/", {"post": "yes"}, follow=True)

    assert not path.exists()
    assert store.broker().find(job_id) == []
    assert status_of(job_id) is None
    assert response.redirect_chain[-1][0] == LIST_URL
    assert f"Job {job_id} was deleted.".encode() in response.content


def test_an_action_the_job_state_does_not_allow_is_refused_with_a_message(staff_client, move_clock):
    job_id = completed_job(move_clock)

    confirmation = staff_client.get(f"{LIST_URL}{job_id}/cancel/")
    assert b"Nothing to cancel" in confirmation.content
    assert b'name="post"' not in confirmation.content

    response = staff_client.post(f"{LIST_URL}{job_id}/cancel/", {"post": "yes"}, follow=True)
    assert status_of(job_id) == "completed"
    assert b"Only pending jobs can be cancelled" in response.content


def test_bulk_actions_confirm_then_act_on_the_selected_jobs(staff_client, move_clock, caplog):
    pending = [new_job(), new_job()]
    done = completed_job(move_clock)
    selected = [*pending, done]

    confirmation = staff_client.post(
        BULK_URL,
        {"action": "cancel", "_selected_action": selected, "_changelist_filters": "status=pending"},
    )
    assert confirmation.status_code == 200
    assert [t["id"] for t in confirmation.context["applicable"]] == pending
    assert all(status_of(job_id) == "pending" for job_id in pending)

    with caplog.at_level(logging.INFO, logger="jobs.operations"):
        response = staff_client.post(
            BULK_URL,
            {
                "action": "cancel",
                "_selected_action": selected,
                "_changelist_filters": "status=pending",
                "post": "yes",
            },
        )

    assert response.status_code == 302
    assert response["Location"] == f"{LIST_URL}?status=pending"
    assert [status_of(job_id) for job_id in selected] == ["cancelled", "cancelled", "completed"]
    for job_id in pending:
        assert f"Staff user alice cancelled job {job_id}" in caplog.text
    shown = [str(m) for m in staff_client.get(LIST_URL).context["messages"]]
    assert "Cancelled 2 jobs." in shown
    assert any(done in message and "not cancelled" in message for message in shown)


def test_bulk_retry_and_delete(staff_client):
    failed = [failed_job(), failed_job()]

    staff_client.post(BULK_URL, {"action": "retry", "_selected_action": failed, "post": "yes"})
    assert [status_of(job_id) for job_id in failed] == ["pending", "pending"]

    staff_client.post(BULK_URL, {"action": "delete", "_selected_action": failed, "post": "yes"})
    assert [status_of(job_id) for job_id in failed] == [None, None]
    assert all(store.broker().find(job_id) == [] for job_id in failed)


def test_bulk_actions_need_a_selection_and_an_action(staff_client):
    job_id = new_job()

    nothing = staff_client.post(BULK_URL, {"action": "cancel", "post": "yes"}, follow=True)
    assert b"Items must be selected" in nothing.content
    no_action = staff_client.post(BULK_URL, {"_selected_action": [job_id]}, follow=True)
    assert b"No action selected" in no_action.content
    assert status_of(job_id) == "pending"


def test_bulk_actions_cannot_be_triggered_with_get(staff_client):
    job_id = new_job()
    response = staff_client.get(
        BULK_URL, {"action": "cancel", "_selected_action": job_id, "post": "yes"}
    )
    assert response.status_code == 405
    assert status_of(job_id) == "pending"


def test_actions_need_the_csrf_token(csrf_client):
    job_id = new_job()
    single = f"{LIST_URL}{job_id}/cancel/"

    assert csrf_client.post(single, {"post": "yes"}).status_code == 403
    bulk = {"action": "cancel", "_selected_action": [job_id], "post": "yes"}
    assert csrf_client.post(BULK_URL, bulk).status_code == 403
    assert status_of(job_id) == "pending"

    token = csrf_token_from(csrf_client.get(single))
    response = csrf_client.post(single, {"post": "yes", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert status_of(job_id) == "cancelled"


def test_the_list_form_posts_to_the_bulk_action_with_a_csrf_token(csrf_client):
    job_id = new_job()
    page = csrf_client.get(LIST_URL)
    assert f'action="{BULK_URL}"'.encode() in page.content

    response = csrf_client.post(
        BULK_URL,
        {
            "action": "delete",
            "_selected_action": [job_id],
            "post": "yes",
            "csrfmiddlewaretoken": csrf_token_from(page),
        },
    )
    assert response.status_code == 302
    assert status_of(job_id) is None


# --- queue health ---------------------------------------------------------------------


def test_the_health_panel_shows_queue_worker_and_photo_source(staff_client, move_clock):
    new_job(delay=5)
    new_job(delay=300)
    health.write_heartbeat(workers=2)
    store.broker().enqueue("payload", due_at=clock.now() - 30, key=None)

    response = staff_client.get(LIST_URL)

    status = response.context["health"]
    assert (status.ready, status.due, status.leased, status.dead) == (3, 1, 0, 0)
    assert status.oldest_due_lateness_seconds == pytest.approx(30, abs=2)
    assert status.worker_alive
    assert status.photo_source == "demo"
    assert status.rate_limit["remaining"] is None
    assert b"Queue health" in response.content
    assert b"offline; no Unsplash key" in response.content


def test_the_health_panel_says_when_no_worker_runs(staff_client):
    response = staff_client.get(LIST_URL)
    assert not response.context["health"].worker_alive
    assert b"start <code>manage.py qcluster</code>" in response.content
