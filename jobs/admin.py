"""The Jobs section of the admin site, without models.

Jobs live in files, so there is no ModelAdmin to register. Instead the
default site gets our pages ahead of its own URLs and a "Jobs" entry in
its app list (index page and sidebar); the views are in
:mod:`jobs.admin_views`. Wrapping methods of ``admin.site`` keeps
``jobsite/urls.py`` and the settings untouched.

Logins are throttled per client address and username: after
``JOBS_THROTTLE_LOGIN_FAILURES`` failures, one more try is allowed every
``JOBS_THROTTLE_LOGIN_WINDOW / JOBS_THROTTLE_LOGIN_FAILURES`` seconds; a
refused try is answered with the login form's error and a 429, without
checking the password (no hashing work for a guesser either). The counts
live in each web process's memory (:mod:`jobs.api.throttling`).

django-q2's admin pages are removed: they show its ORM queue and task
tables, which this system never uses (the broker is on files and results
go to the job files).
"""

from __future__ import annotations

# Imported first so its registrations exist to be undone: "jobs" comes
# before "django_q" in INSTALLED_APPS, so autodiscovery reaches us first.
import django_q.admin  # noqa: F401
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.urls import path
from django_q.models import Failure, OrmQ, Schedule, Success, Task

from jobs import admin_views
from jobs.api.throttling import client_address, login_buckets, retry_after

for _model in (Task, Success, Failure, Schedule, OrmQ):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


def job_urls() -> list:
    view = admin.site.admin_view  # staff only, never cached, CSRF-protected
    return [
        path("jobs/", view(admin_views.app_index), name="jobs_app_index"),
        path("jobs/job/", view(admin_views.job_list), name="jobs_job_changelist"),
        path("jobs/job/actions/", view(admin_views.job_bulk_action), name="jobs_job_actions"),
        path("jobs/job/<str:job_id>/", view(admin_views.job_detail), name="jobs_job_change"),
        path(
            "jobs/job/<str:job_id>/<str:action>/",
            view(admin_views.job_action),
            name="jobs_job_action",
        ),
    ]


class ThrottledLoginForm(AdminAuthenticationForm):
    """The admin's login form, refusing a client that keeps failing for one username."""

    retry_after: float = 0.0

    def clean(self):
        username = self.cleaned_data.get("username")
        if username is None or not self.cleaned_data.get("password"):
            return super().clean()  # a missing field: nothing was tried
        key = (client_address(self.request.META), username)
        buckets = login_buckets()
        wait = buckets.wait(key)
        if wait:
            self.retry_after = wait
            raise ValidationError(
                "Too many failed logins for this username from your address; "
                "try again in %(seconds)s seconds.",
                code="throttled",
                params={"seconds": retry_after(wait)},
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            buckets.take(key)
            raise
        buckets.forget(key)
        return cleaned


def _install(site: admin.AdminSite) -> None:
    if getattr(site, "_jobs_installed", False):
        return
    site_urls = site.get_urls
    site_app_list = site.get_app_list
    site_login = site.login

    def get_urls() -> list:
        # Ours first: the site ends with a catch-all that would hide them.
        return job_urls() + site_urls()

    def get_app_list(request, app_label=None) -> list:
        app_list = site_app_list(request, app_label)
        if app_label in (None, "jobs") and site.has_permission(request):
            app_list = sorted(
                [*app_list, admin_views.jobs_app()], key=lambda app: app["name"].lower()
            )
        return app_list

    def login(request, extra_context=None):
        response = site_login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        wait = getattr(form, "retry_after", 0.0)
        if wait:
            response.status_code = 429
            response["Retry-After"] = retry_after(wait)
        return response

    site.login_form = ThrottledLoginForm
    site.get_urls = get_urls
    site.get_app_list = get_app_list
    site.login = login
    site._jobs_installed = True


_install(admin.site)
