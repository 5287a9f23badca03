"""Django-level error views: problem+json under /api/, Django's defaults elsewhere."""

from __future__ import annotations

from django.core.exceptions import DisallowedHost
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from jobs.api.problems import (
    is_api_path,
    not_found_problem,
    problem_response,
    server_error_problem,
)


def bad_request(request, exception=None):
    if is_api_path(request.path):
        if isinstance(exception, DisallowedHost):
            return problem_response(
                400, "Bad request", "This server does not answer to that Host.", code="bad_host"
            )
        return problem_response(400, "Bad request", "The request is malformed.", code="bad_request")
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if is_api_path(request.path):
        return problem_response(
            403, "Forbidden", "This request is not allowed here.", code="forbidden"
        )
    return defaults.permission_denied(request, exception)


def not_found(request, exception=None):
    if is_api_path(request.path):
        return not_found_problem()
    return defaults.page_not_found(request, exception)


@csrf_exempt
def unknown_api_path(request, *args, **kwargs):
    """Every path under /api/ that names nothing, whatever the method: a 404 problem.

    A plain view, not DRF's: none of the API's rules for requests it handles
    (JSON bodies, throttling of writes) should turn this 404 into another answer.
    """
    return not_found_problem()


def server_error(request):
    if is_api_path(request.path):
        return server_error_problem()
    return defaults.server_error(request)
