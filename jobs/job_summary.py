"""A job summed up in label and value pairs: the admin's detail page and ``manage.py jobs show``.

Both show the same facts under the same labels; each shows times its own
way (the admin page as dates its template formats, the command as text),
so the caller passes how.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobs.model import Job


def summary(job: Job, *, show_time: Callable[[str | None], Any]) -> list[tuple[str, Any]]:
    """The job's status, times, attempts and what it waits for or failed with, in order.

    ``show_time`` turns each time (ISO text, or None when not set) into the
    value shown.
    """
    rows: list[tuple[str, Any]] = [
        ("Status", job.status),
        ("Created", show_time(job.created_at)),
        ("Due", show_time(job.run_at)),
        ("Delay", f"{job.delay_seconds} s"),
        ("Started", show_time(job.started_at)),
        ("Finished", show_time(job.finished_at)),
        ("Attempts", job.attempts),
    ]
    if job.pending_reason:
        rows.append(("Waiting because", job.pending_reason))
    if job.next_attempt_at:
        rows.append(("Next attempt", show_time(job.next_attempt_at)))
    if job.error:
        rows.append(("Error", f"{job.error.message} ({job.error.code})"))
    return rows
