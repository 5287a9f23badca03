"""The public shape of a job document."""

from __future__ import annotations

from typing import Any

from jobs import clock

Job = dict[str, Any]

# Fields every job carries in the API (``null`` when not set).
PUBLIC_FIELDS = (
    "id",
    "url",
    "status",
    "created_at",
    "run_at",
    "updated_at",
    "delay_seconds",
    "started_at",
    "finished_at",
    "attempts",
    "pending_reason",
    "next_attempt_at",
    "result",
    "error",
)


def job_public(job: Job) -> Job:
    """The API view of a stored job document."""
    public = {field: job.get(field) for field in PUBLIC_FIELDS}
    public["url"] = f"/api/jobs/{job['id']}"
    return public


def job_etag(job: Job) -> str:
    return f'"{job["id"]}.{job["revision"]}"'


def record_event(job: Job, event: str, detail: str | None, now: float) -> None:
    """Note a change in the job's history (what the admin timeline shows)."""
    stamp = clock.to_iso(now)
    job["updated_at"] = stamp
    job.setdefault("history", []).append({"at": stamp, "event": event, "detail": detail})
