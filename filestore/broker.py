"""django-q2's broker interface over :class:`filestore.queue.FileQueue`.

Configured with ``Q_CLUSTER["broker_class"] = "filestore.broker.FileBroker"``.
Besides django-q2's interface it implements
:class:`filestore.queue_api.SchedulingBroker`: :meth:`FileBroker.schedule`
puts a small message naming a task function on the queue for a given time,
and :meth:`FileBroker.dequeue` turns it into a signed django-q2 package when
it falls due (see :mod:`filestore.queue_tasks`).
Settings, read when a connection is made (in every cluster process):

- ``JOBS_DATA_DIR`` (``pathlib.Path``, required): messages live in
  ``<JOBS_DATA_DIR>/queue/<queue name>/``, temp files in
  ``<JOBS_DATA_DIR>/tmp/``;
- ``JOBS_MAX_DELIVERIES`` (int, default 5): deliveries before a message is
  dead-lettered;
- ``JOBS_DEAD_LETTER_HANDLER`` (dotted path, optional): a function
  ``(key, payload) -> None`` called once per dead-lettered message;
- ``JOBS_GATHER_SECONDS`` (float, default 0): after a dequeue that handed
  out fewer than ``bulk`` messages, the next one waits this long, so that
  messages falling due one by one are handed out (and batched) together.
  A full load is followed at once by the next: a backlog is not slowed.

The lease is ``Q_CLUSTER["retry"]`` seconds, which django-q2 already
requires to be longer than the task ``timeout``, so a lease only runs out
when its worker died.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django_q.brokers import Broker
from django_q.conf import Conf

from filestore.owners import current_owner
from filestore.queue import FileQueue
from filestore.queue_api import MessageInfo, QueueCounts
from filestore.queue_tasks import (
    ACK_SEPARATOR,
    ScheduledTask,
    UnreadableTaskMessage,
    batch_package,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_DELIVERIES = 5
DEFAULT_BATCH_SIZE = 50
DEFAULT_GATHER_SECONDS = 0.0

# The queue name becomes a directory name.
_QUEUE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class FileBroker(Broker):
    """Task messages as files; see :mod:`filestore.queue` for the format."""

    connection: FileQueue
    # When the next dequeue may take messages (time.monotonic()).
    _next_take = float("-inf")

    @staticmethod
    def get_connection(list_key: str | None = None) -> FileQueue:
        return open_queue(list_key or Conf.CLUSTER_NAME)

    # -- what django-q2 calls ---------------------------------------------------

    def enqueue(
        self,
        task: str,
        *,
        due_at: float | None = None,
        key: str | None = None,
        durable: bool = True,
    ) -> str:
        """Queue a signed task package, visible at ``due_at`` (default now); return its id."""
        return self.connection.enqueue(task, due_at=due_at, key=key, durable=durable)

    def dequeue(self) -> list[tuple[str, str]] | None:
        # Messages falling due one by one are gathered for a moment, so that
        # they run as one batch rather than one task each (JOBS_GATHER_SECONDS).
        pause = self._next_take - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        # Leases name this cluster, so a cluster started after it died can
        # take them back at once (release_leases_of).
        messages = self.connection.dequeue(Conf.BULK, owner=current_owner())
        if messages and len(messages) < Conf.BULK:
            self._next_take = time.monotonic() + _gather_seconds()
        if not messages:
            # The pusher calls dequeue in a tight loop: this sleep is what
            # keeps an idle cluster at ~0% CPU. It is cut short when a
            # message falls due sooner, so a job starts on time, not up to
            # one poll late.
            pause = Conf.POLL
            next_due_at = self.connection.next_due_at
            if next_due_at is not None:
                pause = min(pause, max(0.001, next_due_at - time.time()))
            time.sleep(pause)
            return None
        packages: list[tuple[str, str]] = []
        batches: dict[str, list[tuple[str, str]]] = {}
        for ack_id, payload in messages:
            try:
                scheduled = ScheduledTask.decode(payload)
            except UnreadableTaskMessage as exc:
                # Delivering it again would fail the same way: dead-letter it now.
                logger.error("message %s cannot be run (%s)", ack_id, exc)
                self.connection.fail(ack_id)
                continue
            if scheduled is None:
                # A package as django-q2 enqueued it. Undecodable bytes reach the
                # pusher as text it cannot unsign, so it fails the message; a
                # UnicodeDecodeError here would stop the pusher instead.
                packages.append((ack_id, payload.decode(errors="replace")))
            elif scheduled.batch:
                batches.setdefault(scheduled.func, []).append((ack_id, scheduled.key))
            else:
                packages.append((ack_id, scheduled.package()))
        for func, items in batches.items():
            for group in _groups(items):
                ack_id = ACK_SEPARATOR.join(ack for ack, _ in group)
                packages.append((ack_id, batch_package(func, [key for _, key in group])))
        return packages or None

    def acknowledge(self, task_id: str) -> None:
        for ack_id in task_id.split(ACK_SEPARATOR):
            self.connection.acknowledge(ack_id)

    def fail(self, task_id: str) -> None:
        for ack_id in task_id.split(ACK_SEPARATOR):
            self.connection.fail(ack_id)

    def ping(self) -> bool:
        return self.connection.ping()

    def queue_size(self) -> int:
        """Messages waiting, including those not due yet (delayed jobs are queued work)."""
        return int(self.connection.counts()["ready"])

    def lock_size(self) -> int:
        return int(self.connection.counts()["leased"])

    def info(self) -> str:
        if not self._info:
            self._info = f"File queue {self.connection.root}"
        return self._info

    def purge_queue(self) -> int:
        return self.connection.purge()

    def delete_queue(self) -> int:
        return self.connection.purge()

    def delete(self, task_id: str) -> bool:
        """Remove the message ``task_id`` (the id ``enqueue`` returned)."""
        return self.connection.delete(task_id)

    # -- SchedulingBroker: for the job layer and operators ---------------------

    def schedule(
        self, func: str, *, key: str, due_at: float, durable: bool = True, batch: bool = False
    ) -> str:
        """Have the cluster call ``func(key)`` once ``due_at`` has come; return the message id.

        See :class:`filestore.queue_api.SchedulingBroker`. ``key`` must be a
        job id: it names the message's file and is the task's argument. With
        ``batch``, ``func`` takes a list of keys and is called once for the
        messages of ``func`` handed out together.
        """
        message = ScheduledTask(func=func, key=key, batch=batch).encode()
        # The queue keeps whole milliseconds and drops the rest. Round up to
        # the next millisecond so a message never becomes visible before
        # ``due_at`` (its task would find the job not due and put it back);
        # the half millisecond keeps float error from truncating it one lower.
        due_at = (math.ceil(due_at * 1000) + 0.5) / 1000
        return self.connection.enqueue(message, due_at=due_at, key=key, durable=durable)

    def due_within(self, seconds: float) -> int:
        return self.connection.due_within(seconds)

    def scheduled_around(self, moment: float) -> int:
        return self.connection.scheduled_around(moment)

    def oldest_due_lateness(self) -> float:
        return self.connection.oldest_due_lateness()

    def counts(self) -> QueueCounts:
        return self.connection.counts()

    def keys(self) -> set[str]:
        return self.connection.keys()

    def dead_keys(self) -> set[str]:
        return self.connection.dead_keys()

    def find(self, key: str) -> list[MessageInfo]:
        return self.connection.find(key)

    def delete_key(self, key: str) -> int:
        return self.connection.delete_key(key)

    def release_leases_of(self, owners: Iterable[str]) -> int:
        return self.connection.release_leases_of(owners)


def _gather_seconds() -> float:
    return float(getattr(settings, "JOBS_GATHER_SECONDS", DEFAULT_GATHER_SECONDS))


def _groups(items: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Split the messages of one delivery into packages: at most ``JOBS_BATCH_SIZE`` each,
    and spread over the workers, so that a burst keeps every worker busy."""
    limit = max(1, int(getattr(settings, "JOBS_BATCH_SIZE", DEFAULT_BATCH_SIZE)))
    size = max(1, min(limit, math.ceil(len(items) / max(1, Conf.WORKERS))))
    return [items[start : start + size] for start in range(0, len(items), size)]


def open_queue(name: str) -> FileQueue:
    """The queue ``name`` as the settings describe it."""
    if _QUEUE_NAME_PATTERN.fullmatch(name) is None:
        raise ImproperlyConfigured(f"queue name {name!r} cannot be used as a directory name")
    data_dir = getattr(settings, "JOBS_DATA_DIR", None)
    if data_dir is None:
        raise ImproperlyConfigured("JOBS_DATA_DIR must be set to use filestore.broker.FileBroker")
    max_deliveries = getattr(settings, "JOBS_MAX_DELIVERIES", DEFAULT_MAX_DELIVERIES)
    if not isinstance(max_deliveries, int) or max_deliveries < 1:
        raise ImproperlyConfigured(
            f"JOBS_MAX_DELIVERIES must be an integer >= 1, not {max_deliveries!r}"
        )
    data_dir = Path(data_dir)
    return FileQueue(
        data_dir / "queue" / name,
        data_dir / "tmp",
        lease_seconds=Conf.RETRY,
        max_deliveries=max_deliveries,
        on_dead=_dead_letter_handler(),
    )


def _dead_letter_handler() -> Callable[[str | None, bytes], None] | None:
    path = getattr(settings, "JOBS_DEAD_LETTER_HANDLER", None)
    if not path:
        return None
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"JOBS_DEAD_LETTER_HANDLER {path!r}: {exc}") from exc
