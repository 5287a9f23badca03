"""The Jobs section of the Django admin: pages over the file repository, no models.

Every view here is wrapped by ``admin.site.admin_view`` (see
:mod:`jobs.admin`): staff only, never cached, CSRF-protected. Reads go
through the job selectors of :mod:`jobs.services` and
:func:`jobs.operations.job_inspect`; actions through
:func:`jobs.operations.perform`, as ``manage.py jobs`` does. An action runs
only on a POST carrying ``post=yes``, which only the confirmation page
sends; a GET shows that page and changes nothing. How a job is shown is
:mod:`jobs.admin_format`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import capfirst

from filestore.ids import is_valid_id
from jobs import admin_format, services
from jobs.errors import InvalidInput, JobNotFound
from jobs.model import STATUSES, Job, Status
from jobs.operations import ACTIONS, StaffAction, job_inspect, perform, queue_status

PAGE_SIZE = 50
# A bulk action acts on one page of the list at most.
MAX_SELECTED = services.MAX_PAGE
# Every message about refused jobs is shown up to this many; the rest are counted.
MAX_REFUSAL_MESSAGES = 5


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
    if status is not None and status not in STATUSES:
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
        for name in STATUSES
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
        "rows": [admin_format.row(job) for job in page.jobs],
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


# --- detail ----------------------------------------------------------------------


def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        inspection = job_inspect(job_id)
    except JobNotFound:
        _say_missing(request, job_id)
        return redirect("admin:jobs_job_changelist")
    job = inspection.job
    context = {
        **admin.site.each_context(request),
        "title": f"Job {job.id}",
        "subtitle": None,
        "job": job,
        "summary": admin_format.summary(job),
        "photo": job.result if job.status is Status.COMPLETED else None,
        "timeline": admin_format.timeline(job),
        "queue_messages": admin_format.queue_messages(inspection),
        "raw_json": json.dumps(job.to_document(), indent=2, ensure_ascii=False),
        "file_path": inspection.path,
        "actions": [
            {"action": ACTIONS[name], "url": reverse("admin:jobs_job_action", args=[job.id, name])}
            for name in job.actions()
        ],
    }
    return TemplateResponse(request, "admin/jobs/job_detail.html", context)


def _job_or_none(request: HttpRequest, job_id: str) -> Job | None:
    """The job, or None after telling the user it is gone."""
    try:
        return services.job_get(job_id=job_id)
    except JobNotFound:
        _say_missing(request, job_id)
        return None


def _say_missing(request: HttpRequest, job_id: str) -> None:
    # The wording of Django's own admin for an object that is gone.
    messages.warning(
        request, f"Job with ID {job_id[:64]!r} does not exist. Perhaps it was deleted?"
    )


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
    detail_url = reverse("admin:jobs_job_change", args=[job.id])
    if request.method == "POST" and request.POST.get("post") == "yes":
        _perform(request, chosen, [job.id])
        if chosen.name == "delete":
            return redirect("admin:jobs_job_changelist")
        return redirect(detail_url)
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    return _confirmation(
        request,
        chosen,
        [job.id],
        form_action=reverse("admin:jobs_job_action", args=[job.id, chosen.name]),
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
    action: StaffAction,
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
                "id": found.id,
                "status": found.status,
                "applies": action.applies(found),
                "url": reverse("admin:jobs_job_change", args=[found.id]),
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
        "accepted": " or ".join(action.statuses),
    }
    return TemplateResponse(request, "admin/jobs/job_confirm_action.html", context)


def _perform(request: HttpRequest, action: StaffAction, job_ids: list[str]) -> None:
    """Run the action and tell the user what was done and what was refused."""
    report = perform(action.name, job_ids, operator=f"Staff user {request.user.get_username()}")
    done, refused = report.done, report.refused
    if len(done) == 1:
        messages.success(request, f"Job {done[0].id} was {action.past}.")
    elif done:
        messages.success(request, f"{capfirst(action.past)} {len(done)} jobs.")
    for refusal in refused[:MAX_REFUSAL_MESSAGES]:
        messages.error(
            request, f"Job {refusal.job_id[:64]} was not {action.past}: {refusal.detail}"
        )
    if len(refused) > MAX_REFUSAL_MESSAGES:
        messages.error(
            request, f"{len(refused) - MAX_REFUSAL_MESSAGES} more jobs were not {action.past}."
        )
