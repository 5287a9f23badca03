"""The django-q2 broker on files: :class:`storage.broker.QueueBroker` over a :class:`FileQueue`.

Configured with ``Q_CLUSTER["broker_class"] = "filestore.broker.FileBroker"``.
What it does with messages (batches, the gather pause, scheduling, dead
letters) is the base class's; here is only where the queue lives, read
when a connection is made (in every cluster process):

- ``JOBS_DATA_DIR`` (``pathlib.Path``, required): messages live in
  ``<JOBS_DATA_DIR>/queue/<queue name>/``, temp files in
  ``<JOBS_DATA_DIR>/tmp/``;
- ``JOBS_QUEUE_IMPLIED_TASK`` (dotted path, default none): the batch
  messages of this task are stored as empty files (the project's settings
  name the jobs' run, ``jobs.tasks.run_jobs``): see
  :func:`storage.scheduled_tasks.implied_payloads`. Every process sharing
  the queue must agree on it: a queue opened without it reads such a
  message as an unreadable one and dead-letters it;

plus the settings :mod:`storage.broker` reads.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django_q.conf import Conf

from filestore.queue import FileQueue
from storage import dead_letters
from storage.broker import QueueBroker, max_deliveries
from storage.scheduled_tasks import UnreadableTaskMessage, implied_payloads

# The queue name becomes a directory name.
_QUEUE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class FileBroker(QueueBroker):
    """Task messages as files; see :mod:`filestore.queue` for the format."""

    connection: FileQueue

    @staticmethod
    def get_connection(list_key: str | None = None) -> FileQueue:
        return open_queue(list_key or Conf.CLUSTER_NAME)

    def info(self) -> str:
        if not self._info:
            self._info = f"File queue {self.connection.root}"
        return self._info


def open_queue(name: str) -> FileQueue:
    """The queue ``name`` as the settings describe it."""
    if _QUEUE_NAME_PATTERN.fullmatch(name) is None:
        raise ImproperlyConfigured(f"queue name {name!r} cannot be used as a directory name")
    data_dir = getattr(settings, "JOBS_DATA_DIR", None)
    if data_dir is None:
        raise ImproperlyConfigured("JOBS_DATA_DIR must be set to use filestore.broker.FileBroker")
    data_dir = Path(data_dir)
    implied_task = getattr(settings, "JOBS_QUEUE_IMPLIED_TASK", None)
    try:
        implied_payload = None if implied_task is None else implied_payloads(implied_task)
    except UnreadableTaskMessage:
        raise ImproperlyConfigured(
            f"JOBS_QUEUE_IMPLIED_TASK must be the dotted path of a function, not {implied_task!r}"
        ) from None
    return FileQueue(
        data_dir / "queue" / name,
        data_dir / "tmp",
        lease_seconds=Conf.RETRY,
        max_deliveries=max_deliveries(),
        on_dead=dead_letters.registered(),
        implied_payload=implied_payload,
    )
