"""Domain errors of the jobs app, each mapped once to an HTTP problem."""

from __future__ import annotations


class JobError(Exception):
    """Base of the errors a user can cause and fix; ``detail`` is shown to them."""

    status = 400
    title = "Bad request"
    code = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class JobNotFound(JobError):
    status = 404
    title = "Job not found"
    code = "not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"There is no job with id {job_id!r}.")
        self.job_id = job_id


class InvalidInput(JobError):
    status = 400
    title = "Invalid request"
    code = "invalid"

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or {}


class IdempotencyKeyReused(JobError):
    status = 422
    title = "Idempotency key reused"
    code = "idempotency_key_reused"


class IdempotencyKeyInProgress(JobError):
    status = 409
    title = "Request in progress"
    code = "idempotency_key_in_progress"


class InvalidTransition(JobError):
    status = 409
    title = "Not possible in this state"
    code = "invalid_transition"
