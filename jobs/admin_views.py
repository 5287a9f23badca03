"""The Jobs section of the Django admin: pages over the file repository, no models.

Every view here is wrapped by ``admin.site.admin_view`` (see
:mod:`jobs.admin`): staff only, never cached, CSRF-protected. Reads go
through the job selectors, changes through ``services.job_retry``,
``job_cancel`` and ``job_delete``, the same functions the operator commands
call. An action runs only on a POST carrying ``post=yes``, which only the
confirmation page sends; a GET shows that page and changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import capfirst

from filestore.ids import is_valid_id
from jobs import clock, services, store
from jobs.errors import InvalidInput, JobError, JobNotFound
from jobs.operations import queue_status

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
# A bulk action acts on one page of the list at most.
MAX_SELECTED = services.MAX_PAGE
# Every message about refused jobs is shown up to this many; the rest are counted.
MAX_REFUSAL_MESSAGES = 5

Job = dict[str, Any]


@dataclass(frozen=True)
class JobAction:
    name: str
    label: str  # "Retry"
    past: str  # "retried"
    explanation: str  # what the action does, on the confirmation page
    applies_to: tuple[str, ...]  # the statuses it accepts
    run: Callable[..., Job]

    def applies(self, job: Job) -> bool:
        return job["status"] in self.applies_to


ACTIONS = {
    action.name: action
    for action in (
        JobAction(
            "retry",
            "Retry",
            "retried",
            "Retried jobs go back to pending, due now, and are queued for a new run.",
            ("failed", "cancelled"),
            services.job_retry,
        ),
        JobAction(
            "cancel",
            "Cancel",
            "cancelled",
            "Cancelled jobs do not run: when their queued message arrives, it finds them "
            "cancelled and does nothing.",
            ("pending",),
            services.job_cancel,
        ),
        JobAction(
            "delete",
            "Delete",
            "deleted",
            "The job files and their queue messages are removed for good; the result of a "
            "job still running is discarded.",
            services.STATUSES,
            services.job_delete,
        ),
    )
}

TIMELINE_LABELS = {
    "created": "Created",
    "started": "Started",
    "completed": "Completed",
    "failed": "Failed",
    "pending": "Will try again",
    "cancelled": "Cancelled",
    "retried": "Retried",
    "lease-expired": "Run lost",
    "requeued": "Requeued",
}


# --- the entry on the admin index ------------------------------------------------


def jobs_app() -> dict[str, Any]:
    """The "Jobs" section as the admin's index and sidebar list it."""
    return {
        "name": "Jobs",
        "app_label": "jobs",
        "app_url": reverse("admin:jobs_app_index"),
        "has_module_perms": True,
        "models": [
            {
                "name": "Jobs",
                "object_name": "Job",
                "perms": {"add": False, "change": True, "delete": True, "view": True},
                "admin_url": reverse("admin:jobs_job_changelist"),
                "add_url": None,
                "view_only": True,
            }
        ],
    }


def app_index(request: HttpRequest) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Jobs administration",
        "subtitle": None,
        "app_list": [jobs_app()],
        "app_label": "jobs",
    }
    return TemplateResponse(request, "admin/app_index.html", context)


# --- list ------------------------------------------------------------------------


def job_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or None
    query = request.GET.get("q", "").strip()
    cursor = request.GET.get("cursor") or None
    # The cursors of the pages before this one, so "Newer" goes back exactly
    # one page: the repository walks newest first only.
    trail = [part for part in request.GET.get("trail", "").split(",") if is_valid_id(part)]
    if status is not None and status not in services.STATUSES:
        messages.error(request, f"Unknown status {status!r}; showing all jobs.")
        status = None
    statuses = [status] if status else None

    page = services.JobPage([], None)
    try:
        if query:
            page = services.job_search(
                id_prefix=query, statuses=statuses, cursor=cursor, limit=PAGE_SIZE
            )
        else:
            page = services.job_list(statuses=statuses, cursor=cursor, limit=PAGE_SIZE)
    except InvalidInput as error:
        messages.error(request, error.detail)
        cursor, trail = None, []

    counts = services.job_counts()
    filters = {key: value for key, value in (("status", status), ("q", query)) if value}

    def list_url(**params: str | None) -> str:
        merged = {**filters, **params}
        query_string = urlencode({key: value for key, value in merged.items() if value})
        return reverse("admin:jobs_job_changelist") + (f"?{query_string}" if query_string else "")

    status_choices = [
        {
            "label": "All",
            "count": sum(counts.values()),
            "url": list_url(status=None),
            "selected": status is None,
        }
    ] + [
        {
            "label": capfirst(name),
            "count": counts[name],
            "url": list_url(status=name),
            "selected": status == name,
        }
        for name in services.STATUSES
    ]
    newer_url = None
    if cursor:
        newer_url = list_url(cursor=trail[-1] if trail else None, trail=",".join(trail[:-1]))
    older_url = None
    if page.next_cursor:
        older_trail = [*trail, cursor] if cursor else []
        older_url = list_url(cursor=page.next_cursor, trail=",".join(older_trail))

    context = {
        **admin.site.each_context(request),
        "title": "Jobs",
        "subtitle": None,
        "rows": [_row(job) for job in page.jobs],
        "status": status,
        "query": query,
        "status_choices": status_choices,
        "total": sum(counts.values()),
        "matching": counts[status] if status else sum(counts.values()),
        "filters_query": urlencode(filters),
        "has_filters": bool(filters),
        "clear_filters_url": reverse("admin:jobs_job_changelist"),
        "newest_url": list_url() if cursor else None,
        "newer_url": newer_url,
        "older_url": older_url,
        "actions": list(ACTIONS.values()),
        "health": queue_status(),
    }
    return TemplateResponse(request, "admin/jobs/job_list.html", context)


def _row(job: Job) -> dict[str, Any]:
    result = job.get("result") or {}
    error = job.get("error") or {}
    due = job.get("next_attempt_at") or job.get("run_at")
    thumb = None
    if job["status"] == "completed":
        thumb = (result.get("urls") or {}).get("thumb")
    return {
        "id": job["id"],
        "url": reverse("admin:jobs_job_change", args=[job["id"]]),
        "status": job["status"],
        "created_at": _moment(job.get("created_at")),
        "run_at": _moment(due),
        "started_at": _moment(job.get("started_at")),
        "finished_at": _moment(job.get("finished_at")),
        "attempts": job.get("attempts") or 0,
        "thumb": thumb,
        "alt": result.get("alt_description") or result.get("description") or "photo",
        "note": error.get("message") or job.get("pending_reason") or "",
        "due_in": _seconds_text(clock.from_iso(due) - clock.now()) if due else "",
    }


def _seconds_text(seconds: float) -> str:
    """A short relative time: "in 35 s", "in 4 min", "12 s late"."""
    amount = abs(seconds)
    text = f"{amount:.0f} s" if amount < 120 else f"{amount / 60:.0f} min"
    return f"in {text}" if seconds >= 0 else f"{text} late"


def _moment(value: str | float | None) -> datetime | None:
    if value is None:
        return None
    timestamp = clock.from_iso(value) if isinstance(value, str) else float(value)
    return datetime.fromtimestamp(timestamp, tz=UTC)


# --- detail ----------------------------------------------------------------------


def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = _job_or_none(request, job_id)
    if job is None:
        return redirect("admin:jobs_job_changelist")
    context = {
        **admin.site.each_context(request),
        "title": f"Job {job['id']}",
        "subtitle": None,
        "job": job,
        "summary": _summary(job),
        "photo": job.get("result") if job["status"] == "completed" else None,
        "timeline": _timeline(job),
        "queue_messages": _queue_messages(job["id"]),
        "raw_json": json.dumps(job, indent=2, ensure_ascii=False),
        "file_path": store.repository().path_for(job["id"], job["status"]),
        "actions": [
            {"action": action, "url": reverse("admin:jobs_job_action", args=[job["id"], name])}
            for name, action in ACTIONS.items()
            if action.applies(job)
        ],
    }
    return TemplateResponse(request, "admin/jobs/job_detail.html", context)


def _job_or_none(request: HttpRequest, job_id: str) -> Job | None:
    """The job, or None after telling the user it is gone (as the admin does)."""
    try:
        return services.job_get(job_id=job_id)
    except JobNotFound:
        messages.warning(
            request, f"Job with ID {job_id[:64]!r} does not exist. Perhaps it was deleted?"
        )
        return None


def _summary(job: Job) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("Status", job["status"]),
        ("Created", _moment(job.get("created_at"))),
        ("Due", _moment(job.get("run_at"))),
        ("Delay", f"{job.get('delay_seconds')} s"),
        ("Started", _moment(job.get("started_at"))),
        ("Finished", _moment(job.get("finished_at"))),
        ("Attempts", job.get("attempts") or 0),
    ]
    if job.get("pending_reason"):
        rows.append(("Waiting because", job["pending_reason"]))
    if job.get("next_attempt_at"):
        rows.append(("Next attempt", _moment(job["next_attempt_at"])))
    if job.get("error"):
        rows.append(("Error", f"{job['error'].get('message')} ({job['error'].get('code')})"))
    return rows


def _timeline(job: Job) -> list[dict[str, Any]]:
    """The job's history with its due time (and next attempt) placed among it."""
    entries = [
        {
            "at": _moment(item.get("at")),
            "event": TIMELINE_LABELS.get(item.get("event"), capfirst(str(item.get("event")))),
            "kind": item.get("event"),
            "detail": item.get("detail") or "",
        }
        for item in job.get("history") or []
    ]
    now = clock.now()
    due_times = [("Due", job.get("run_at"))]
    if job.get("next_attempt_at"):
        due_times.append(("Next attempt due", job["next_attempt_at"]))
    for label, value in due_times:
        if value is None:
            continue
        moment = _moment(value)
        future = clock.from_iso(value) > now
        entries.append(
            {
                "at": moment,
                "event": label,
                "kind": "due",
                "detail": "scheduled" if future else "",
                "future": future,
            }
        )
    entries.sort(key=lambda entry: (entry["at"] is None, entry["at"] or datetime.min))
    return entries


def _queue_messages(job_id: str) -> list[dict[str, Any]]:
    return [
        {
            "state": message.state,
            "message_id": message.message_id,
            "deliveries": message.deliveries,
            "due_at": _moment(message.due_at),
            "lease_until": _moment(message.lease_until),
            "dead_at": _moment(message.dead_at),
        }
        for message in store.broker().find(job_id)
    ]


# --- actions ---------------------------------------------------------------------


def job_action(request: HttpRequest, job_id: str, action: str) -> HttpResponse:
    """One action on one job: GET asks for confirmation, POST with ``post=yes`` acts."""
    chosen = ACTIONS.get(action)
    if chosen is None:
        messages.error(request, f"Unknown action {action!r}.")
        return redirect("admin:jobs_job_changelist")
    job = _job_or_none(request, job_id)
    if job is None:
        return redirect("admin:jobs_job_changelist")
    detail_url = reverse("admin:jobs_job_change", args=[job["id"]])
    if request.method == "POST" and request.POST.get("post") == "yes":
        _perform(request, chosen, [job["id"]])
        if chosen.name == "delete":
            return redirect("admin:jobs_job_changelist")
        return redirect(detail_url)
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    return _confirmation(
        request,
        chosen,
        [job["id"]],
        form_action=reverse("admin:jobs_job_action", args=[job["id"], chosen.name]),
        back_url=detail_url,
        job=job,
    )


def job_bulk_action(request: HttpRequest) -> HttpResponse:
    """The list's action bar: confirmation first, then the action on ``post=yes``."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    back_url = _list_url(request.POST.get("_changelist_filters", ""))
    chosen = ACTIONS.get(request.POST.get("action", ""))
    job_ids = list(dict.fromkeys(request.POST.getlist("_selected_action")))
    if chosen is None:
        messages.warning(request, "No action selected.")
        return redirect(back_url)
    if not job_ids:
        messages.warning(
            request,
            "Items must be selected in order to perform actions on them. "
            "No items have been changed.",
        )
        return redirect(back_url)
    if len(job_ids) > MAX_SELECTED:
        messages.error(request, f"Select at most {MAX_SELECTED} jobs at once.")
        return redirect(back_url)
    if request.POST.get("post") == "yes":
        _perform(request, chosen, job_ids)
        return redirect(back_url)
    return _confirmation(
        request,
        chosen,
        job_ids,
        form_action=reverse("admin:jobs_job_actions"),
        back_url=back_url,
        filters=request.POST.get("_changelist_filters", ""),
    )


def _list_url(filters: str) -> str:
    """The list page with the filters it was left with (only the known ones)."""
    given = QueryDict(filters)
    kept = {key: given[key] for key in ("status", "q") if given.get(key)}
    base = reverse("admin:jobs_job_changelist")
    return f"{base}?{urlencode(kept)}" if kept else base


def _confirmation(
    request: HttpRequest,
    action: JobAction,
    job_ids: list[str],
    *,
    form_action: str,
    back_url: str,
    job: Job | None = None,
    filters: str = "",
) -> HttpResponse:
    targets = []
    for job_id in job_ids:
        try:
            found = services.job_get(job_id=job_id)
        except JobNotFound:
            targets.append({"id": job_id[:64], "status": None, "applies": False, "url": None})
            continue
        targets.append(
            {
                "id": found["id"],
                "status": found["status"],
                "applies": action.applies(found),
                "url": reverse("admin:jobs_job_change", args=[found["id"]]),
            }
        )
    context = {
        **admin.site.each_context(request),
        "title": "Are you sure?",
        "subtitle": None,
        "action": action,
        "targets": targets,
        "applicable": [target for target in targets if target["applies"]],
        "job": job,
        "form_action": form_action,
        "back_url": back_url,
        "filters": filters,
        "accepted": " or ".join(action.applies_to),
    }
    return TemplateResponse(request, "admin/jobs/job_confirm_action.html", context)


def _perform(request: HttpRequest, action: JobAction, job_ids: Iterable[str]) -> None:
    user = request.user.get_username()
    done: list[str] = []
    refused: list[tuple[str, str]] = []
    for job_id in job_ids:
        try:
            action.run(job_id=job_id)
        except JobError as error:
            refused.append((job_id[:64], error.detail))
            logger.warning(
                "Staff user %s could not %s job %s: %s", user, action.name, job_id, error.detail
            )
        else:
            done.append(job_id)
            logger.info("Staff user %s %s job %s", user, action.past, job_id)
    if len(done) == 1:
        messages.success(request, f"Job {done[0]} was {action.past}.")
    elif done:
        messages.success(request, f"{capfirst(action.past)} {len(done)} jobs.")
    for job_id, detail in refused[:MAX_REFUSAL_MESSAGES]:
        messages.error(request, f"Job {job_id} was not {action.past}: {detail}")
    if len(refused) > MAX_REFUSAL_MESSAGES:
        messages.error(
            request, f"{len(refused) - MAX_REFUSAL_MESSAGES} more jobs were not {action.past}."
        )
