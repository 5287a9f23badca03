"""Keeps everything under /api/ speaking problem+json, whatever DEBUG is."""

from __future__ import annotations

from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import DisallowedHost

from jobs.api.errors import problem_for_exception
from jobs.api.problems import (
    PROBLEM_CONTENT_TYPE,
    SERVER_ERROR_DETAIL,
    is_api_path,
    problem_response,
)

# Error answers of the API that are already JSON: problems, and the health
# report (a 503 whose body says which check failed).
_JSON_TYPES = (PROBLEM_CONTENT_TYPE, "application/json")
# Headers of an error answer that still mean something once it is a problem.
_KEPT_HEADERS = ("Allow", "Retry-After")


class ApiProblemMiddleware:
    """First in MIDDLEWARE: it sees every request before the rest of Django can answer it."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if not is_api_path(request.path_info):
            return self.get_response(request)
        refused = self._refuse(request)
        if refused is not None:
            return refused
        return self._as_problem(request, self.get_response(request))

    def _refuse(self, request):
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
        return None

    def _as_problem(self, request, response):
        """Turn an error page that another part of Django made for /api/ into a problem.

        The views answer with problems themselves; this catches the answers
        made around them (the CSRF failure page, Django's error pages, the
        debug page with its stack trace), so that a client of the API never
        gets HTML. The most common: a Host not in ALLOWED_HOSTS, which
        CommonMiddleware refuses with an HTML 400. It is recognised here,
        on the way out, rather than checked for on every request.
        """
        if response.status_code < 400:
            return response
        media_type = response.get("Content-Type", "").split(";")[0].strip()
        if media_type in _JSON_TYPES:
            return response
        # Not response.close(): that would send request_finished in mid-request.
        # An error page holds no file or stream to release.
        status = response.status_code
        if status == 400 and not self._host_allowed(request):
            return problem_response(
                400, "Bad request", "This server does not answer to that Host.", code="bad_host"
            )
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        detail = (
            SERVER_ERROR_DETAIL if status >= 500 else f"The request was refused ({status} {title})."
        )
        problem = problem_response(status, title, detail, code=title.lower().replace(" ", "_"))
        for name in _KEPT_HEADERS:
            if name in response:
                problem[name] = response[name]
        return problem

    @staticmethod
    def _host_allowed(request) -> bool:
        try:
            request.get_host()
        except DisallowedHost:
            return False
        return True

    def process_exception(self, request, exception):
        # Exceptions that escape views (outside DRF's handler) would become
        # Django's HTML error pages, or the debug page with a stack trace.
        if is_api_path(request.path_info):
            return problem_for_exception(exception)
        return None
