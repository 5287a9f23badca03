"""The file stores of the jobs app, built once per process from the settings."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from django.conf import settings

from filestore.idempotency import IdempotencyStore
from filestore.repository import JobRepository
from jobs import clock
from jobs.model import STATUSES, Job
from storage.protocols import SchedulingBroker


class JobCodec:
    """Jobs to and from the JSON documents in their files."""

    def load(self, document: dict[str, Any]) -> Job:
        return Job.from_document(document)

    def dump(self, job: Job) -> dict[str, Any]:
        return job.to_document()

    def revised(self, job: Job, revision: int) -> Job:
        """``dataclasses.replace(job, revision=revision)``, in an eighth of its time.

        It runs for every job stored, and ``replace`` passes all of a job's
        fields through its ``__init__`` again (a few microseconds, of a
        create's few hundred). A job is a frozen dataclass with no
        ``__post_init__``: copying its fields is the same job.
        """
        if job.revision == revision:
            return job
        copy = object.__new__(Job)
        fields = copy.__dict__
        fields.update(job.__dict__)
        fields["revision"] = revision
        return copy


def data_dir() -> Path:
    value = settings.JOBS_DATA_DIR
    return value if isinstance(value, Path) else Path(value)


@functools.cache
def _repository(root: Path) -> JobRepository[Job]:
    repository = JobRepository(root, JobCodec(), statuses=STATUSES)
    repository.setup()
    return repository


def repository() -> JobRepository[Job]:
    return _repository(data_dir())


@functools.cache
def _idempotency(root: Path) -> IdempotencyStore:
    return IdempotencyStore(root / "idempotency", root / "tmp", clock=lambda: clock.now())


def idempotency() -> IdempotencyStore:
    return _idempotency(data_dir())


@functools.cache
def _broker(root: Path, name: str) -> SchedulingBroker:
    from jobs.queueing import job_broker

    return job_broker(name)


def broker() -> SchedulingBroker:
    return _broker(data_dir(), settings.Q_CLUSTER["name"])
