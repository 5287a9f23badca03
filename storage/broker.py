"""django-q2's broker interface over any :class:`storage.protocols.MessageQueue`.

:class:`QueueBroker` is what every broker of this project does the same
way whatever keeps its messages: it hands out due messages in packages
(jobs due together in batches), gathers messages falling due one by one for
a moment, sleeps while nothing is due, settles a batch's messages one by
one, and puts a job's run on the queue for a given time
(:class:`storage.protocols.SchedulingBroker`). A subclass says where its
queue lives (:meth:`QueueBroker.get_connection`):
:class:`filestore.broker.FileBroker` and :class:`redisstore.broker.RedisBroker`.

Settings, read when a connection is made or messages are handed out (in
every cluster process):

- ``JOBS_MAX_DELIVERIES`` (int, default 5): deliveries before a message is
  dead-lettered (:func:`max_deliveries`);
- ``JOBS_BATCH_SIZE`` (int, default 50): at most this many jobs per package;
- ``JOBS_GATHER_SECONDS`` (float; 0 when unset, the project's settings
  make it 100 ms from ``JOBS_GATHER_MS``): after a dequeue that handed
  out fewer than ``bulk`` messages, the next one waits this long, so that
  messages falling due one by one are handed out (and batched) together.
  A full load is followed at once by the next: a backlog is not slowed.

The dead-letter handler is the one registered with
:mod:`storage.dead_letters`. The lease is ``Q_CLUSTER["retry"]`` seconds,
which django-q2 already requires to be longer than the task ``timeout``, so
a lease only runs out when its worker died.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django_q.brokers import Broker
from django_q.conf import Conf

from storage.messages import DEFAULT_MAX_DELIVERIES, MessageInfo, NewMessage, QueueCounts
from storage.owners import current_owner
from storage.protocols import MessageQueue
from storage.scheduled_tasks import (
    ACK_SEPARATOR,
    ScheduledTask,
    UnreadableTaskMessage,
    batch_package,
)
from storage.times import round_up_to_ms

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 50
DEFAULT_GATHER_SECONDS = 0.0


class QueueBroker(Broker):
    """django-q2's ``Broker`` and :class:`~storage.protocols.SchedulingBroker` over a queue."""

    connection: MessageQueue
    # When the next dequeue may take messages (time.monotonic()).
    _next_take = float("-inf")

    @staticmethod
    def get_connection(list_key: str | None = None) -> MessageQueue:
        """The queue ``list_key`` (default: the cluster's name) as the settings describe it."""
        raise NotImplementedError

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
            self._next_take = time.monotonic() + gather_seconds()
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
        """Settle a package's messages: one ack id, or a batch's joined by ``ACK_SEPARATOR``."""
        for ack_id in task_id.split(ACK_SEPARATOR):
            self.connection.acknowledge(ack_id)

    def fail(self, task_id: str) -> None:
        """Dead-letter a package's messages, each on its own."""
        for ack_id in task_id.split(ACK_SEPARATOR):
            self.connection.fail(ack_id)

    def ping(self) -> bool:
        return self.connection.ping()

    def queue_size(self) -> int:
        """Messages waiting, including those not due yet (delayed jobs are queued work)."""
        return int(self.connection.counts()["ready"])

    def lock_size(self) -> int:
        return int(self.connection.counts()["leased"])

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

        See :class:`storage.protocols.SchedulingBroker`. ``key`` must be a
        job id: it names the message and is the task's argument. With
        ``batch``, ``func`` takes a list of keys and is called once for the
        messages of ``func`` handed out together.
        """
        (message_id,) = self.schedule_many(func, [(key, due_at)], durable=durable, batch=batch)
        return message_id

    def schedule_many(
        self,
        func: str,
        runs: Sequence[tuple[str, float]],
        *,
        durable: bool = True,
        batch: bool = False,
    ) -> list[str]:
        """:meth:`schedule` for each ``(key, due_at)``, with one call to the queue
        (:meth:`storage.protocols.MessageQueue.enqueue_many`)."""
        # The queue keeps whole milliseconds and drops the rest: rounded up,
        # a message never becomes visible before ``due_at`` (its task would
        # find the job not due and put it back).
        return self.connection.enqueue_many(
            [
                NewMessage(
                    ScheduledTask(func=func, key=key, batch=batch).encode(),
                    round_up_to_ms(due_at),
                    key,
                )
                for key, due_at in runs
            ],
            durable=durable,
        )

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


def max_deliveries() -> int:
    """``JOBS_MAX_DELIVERIES``, checked: deliveries before a message is dead-lettered."""
    value = getattr(settings, "JOBS_MAX_DELIVERIES", DEFAULT_MAX_DELIVERIES)
    if not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(f"JOBS_MAX_DELIVERIES must be an integer >= 1, not {value!r}")
    return value


def gather_seconds() -> float:
    """``JOBS_GATHER_SECONDS``: how long a dequeue after a partial one waits (see above)."""
    return float(getattr(settings, "JOBS_GATHER_SECONDS", DEFAULT_GATHER_SECONDS))


def _groups(items: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Split the messages of one delivery into packages: at most ``JOBS_BATCH_SIZE`` each,
    and spread over the workers, so that a burst keeps every worker busy."""
    limit = max(1, int(getattr(settings, "JOBS_BATCH_SIZE", DEFAULT_BATCH_SIZE)))
    size = max(1, min(limit, math.ceil(len(items) / max(1, Conf.WORKERS))))
    return [items[start : start + size] for start in range(0, len(items), size)]
