"""The one mapping of exceptions to API problems."""

from __future__ import annotations

import errno
import logging

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from rest_framework import exceptions as drf

from jobs.api.problems import not_found_problem, problem_response, server_error_problem
from jobs.api.throttling import retry_after
from jobs.errors import InvalidInput, JobError
from storage.errors import StoreUnavailable

logger = logging.getLogger(__name__)

# Errors of the file system that no retry by the client can fix, but an
# operator can (free space, remount, fix permissions or the disk): the
# service is unavailable, not broken, so clients get a 503 to retry later.
STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EROFS, errno.EPERM, errno.EACCES, errno.EIO, errno.EDQUOT}
)
STORAGE_RETRY_AFTER = 30
# Redis restarts in seconds; clients retry soon after.
QUEUE_RETRY_AFTER = 5


def storage_error(exc: BaseException) -> OSError | None:
    """The storage failure behind ``exc``, if it is one or was raised because of one."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, OSError) and current.errno in STORAGE_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{field}: {_flatten(value)}" for field, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def problem_for_exception(exc: Exception):
    if isinstance(exc, InvalidInput):
        extra = {"errors": exc.errors} if exc.errors else None
        return problem_response(exc.status, exc.title, exc.detail, code=exc.code, extra=extra)
    if isinstance(exc, JobError):
        wait = getattr(exc, "retry_after", 1 if exc.status == 409 else None)
        headers = None if wait is None else {"Retry-After": str(wait)}
        return problem_response(exc.status, exc.title, exc.detail, code=exc.code, headers=headers)
    if isinstance(exc, drf.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return problem_response(
            400, "Invalid request", _flatten(detail), code="invalid", extra={"errors": detail}
        )
    if isinstance(exc, RequestDataTooBig):
        return problem_response(
            413, "Request body too large", "The request body is too large.", code="too_large"
        )
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return problem_response(
            400,
            "Too many parameters",
            "The request has more parameters than the API reads.",
            code="too_many_parameters",
        )
    if isinstance(exc, drf.ParseError):
        return problem_response(
            400, "Malformed request body", _flatten(exc.detail), code="malformed"
        )
    if isinstance(exc, drf.UnsupportedMediaType):
        return problem_response(
            415,
            "Unsupported media type",
            f"{_flatten(exc.detail)} Send the body as application/json.",
            code="unsupported_media_type",
        )
    if isinstance(exc, drf.MethodNotAllowed):
        return problem_response(
            405, "Method not allowed", _flatten(exc.detail), code="method_not_allowed"
        )
    if isinstance(exc, drf.Throttled):
        wait = retry_after(exc.wait or 1)
        return problem_response(
            429,
            "Too many requests",
            f"Too many requests from your address; retry in {wait} s.",
            code="throttled",
            headers={"Retry-After": wait},
        )
    if isinstance(exc, (Http404, drf.NotFound)):
        return not_found_problem()
    if isinstance(exc, drf.APIException):
        return problem_response(
            exc.status_code,
            exc.default_detail.__str__(),
            _flatten(exc.detail),
            code=exc.default_code,
        )
    if isinstance(exc, StoreUnavailable) or isinstance(exc.__cause__, StoreUnavailable):
        logger.error("Redis unavailable: %s", exc)
        return problem_response(
            503,
            "Service unavailable",
            "The job queue cannot be reached right now. Retry later, with the same "
            "Idempotency-Key if you sent one.",
            code="queue_unavailable",
            headers={"Retry-After": str(QUEUE_RETRY_AFTER)},
        )
    failure = storage_error(exc)
    if failure is not None:
        logger.error(
            "Storage unavailable: %s (%s)",
            failure.strerror or failure,
            errno.errorcode.get(failure.errno, failure.errno),
            exc_info=exc,
        )
        return problem_response(
            503,
            "Storage unavailable",
            "Storage is unavailable right now (for example, the disk is full or "
            "read-only); the error has been logged. Retry later.",
            code="storage_unavailable",
            headers={"Retry-After": str(STORAGE_RETRY_AFTER)},
        )
    logger.exception("Unhandled error in the API", exc_info=exc)
    return server_error_problem()


def problem_exception_handler(exc: Exception, context) -> object:
    """DRF's EXCEPTION_HANDLER: every exception raised in a view becomes a problem."""
    response = problem_for_exception(exc)
    if isinstance(exc, drf.MethodNotAllowed):
        view = context.get("view")
        if view is not None:
            response["Allow"] = ", ".join(view.allowed_methods)
    return response
