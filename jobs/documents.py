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


def new_job_document(job_id: str, *, delay: int, now: float) -> Job:
    """The document of a job just created: pending until ``now + delay``."""
    created = clock.to_iso(now)
    return {
        "id": job_id,
        "status": "pending",
        "created_at": created,
        "run_at": clock.to_iso(now + delay),
        "updated_at": created,
        "delay_seconds": delay,
        "started_at": None,
        "finished_at": None,
        "attempts": 0,
        "pending_reason": None,
        "next_attempt_at": None,
        "result": None,
        "error": None,
        "history": [{"at": created, "event": "created", "detail": f"due in {delay} s"}],
    }
