"""Django-level error views: problem+json under /api/, Django's defaults elsewhere."""

from __future__ import annotations

from django.views import defaults

from jobs.api.problems import is_api_path, problem_response


def not_found(request, exception=None):
    if is_api_path(request.path):
        return problem_response(
            404, "Not found", "There is nothing at this address.", code="not_found"
        )
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api_path(request.path):
        return problem_response(
            500,
            "Internal server error",
            "Something went wrong on our side; the error has been logged.",
            code="server_error",
        )
    return defaults.server_error(request)
