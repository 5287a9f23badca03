"""What a store raises when it is out of reach, whatever keeps it."""

from __future__ import annotations


class StoreUnavailable(ConnectionError):
    """A shared store (Redis) cannot be reached now; the same call may succeed later.

    A :class:`ConnectionError`, hence an :class:`OSError`: code that treats a
    failing disk as "storage unavailable, try again" treats it the same way.
    The job layer catches this, never a backend's own error class.
    """
