"""Keeps everything under /api/ speaking problem+json, whatever DEBUG is."""

from __future__ import annotations

from django.conf import settings

from jobs.api.errors import problem_for_exception
from jobs.api.problems import is_api_path, problem_response


class ApiProblemMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if is_api_path(request.path_info):
            length = request.META.get("CONTENT_LENGTH") or "0"
            try:
                too_large = int(length) > settings.JOBS_MAX_BODY_BYTES
            except ValueError:
                return problem_response(
                    400, "Bad request", "Content-Length is not a number.", code="bad_request"
                )
            if too_large:
                return problem_response(
                    413,
                    "Request body too large",
                    f"The request body may be at most {settings.JOBS_MAX_BODY_BYTES} bytes.",
                    code="too_large",
                )
        return self.get_response(request)

    def process_exception(self, request, exception):
        # Exceptions that escape views (outside DRF's handler) would become
        # Django's HTML error pages, or the debug page with a stack trace.
        if is_api_path(request.path_info):
            return problem_for_exception(exception)
        return None
