"""Why a photo could not be had: the errors every source raises and the pool passes on.

The job task reads only the class: :class:`PermanentPhotoError` fails the
job at once, :class:`TransientPhotoError` (and its kind
:class:`RateLimited`) sends it back to wait. ``code`` and ``message`` end up
in the job's ``error`` or ``pending_reason``, so the message is written for
the person who reads it.
"""

from __future__ import annotations

from typing import Any


class PhotoSourceError(Exception):
    """A photo could not be fetched.

    ``code`` is a stable identifier (``unsplash_unauthorized``, ...);
    ``message`` is written for the operator or user who reads it.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps code, message and retry_after through pickling (worker processes).
        return (type(self), (self.code, self.message), self.__dict__.copy())

    def as_error(self) -> dict[str, str]:
        """The ``error`` object of a job: ``{"code": ..., "message": ...}``."""
        return {"code": self.code, "message": self.message}


class TransientPhotoError(PhotoSourceError):
    """Worth retrying later; ``retry_after`` (seconds) is a hint when known."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class RateLimited(TransientPhotoError):
    """The source's request budget is spent; retry after ``retry_after`` seconds."""

    DEFAULT_MESSAGE = (
        "The photo service's request limit is reached; photos will be fetched again once it resets."
    )

    def __init__(
        self,
        code: str = "rate_limited",
        message: str = DEFAULT_MESSAGE,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message, retry_after=retry_after)


class PermanentPhotoError(PhotoSourceError):
    """Retrying cannot help until someone fixes the configuration."""
