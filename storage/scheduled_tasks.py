"""Scheduled task messages: their small form in a queue, and the django-q2 package at delivery.

A message written by :meth:`storage.broker.QueueBroker.schedule` names the
task function and its argument, the key (a job id) the message belongs to::

    {"v":1,"func":"jobs.tasks.run_jobs","key":"01JABCDEFGHJKMNPQRSTVWXYZ0","batch":true}

The create path therefore writes some sixty bytes: no pickling, no
signature, no task id. The message carries its key itself, not only in the
queue's bookkeeping (a file name, a Redis hash), so any queue can hand it out
as it is. When the message is handed out, the broker builds the task
dict :func:`django_q.tasks.async_task` would have built for
``async_task(func, key)`` and signs it with django-q2's
:class:`~django_q.signing.SignedPackage`, so the stock pusher, workers and
monitor run it unchanged.

Any other content is a signed package as django-q2 gave it to
``Broker.enqueue`` (``async_task(..., broker=...)``); it is handed out as
it is. The two cannot be confused: a signed package is URL-safe base64 and
never starts with ``{``.

Why nothing is lost by not signing on disk: the signature keeps a queue
reader from running a package somebody else forged. The messages live in
the data directory, which is private to the service's user and holds the
signing key itself (``secret_key``), so whoever could forge a message could
also sign it. The package is still signed on its way to the pusher,
because that is the form the pusher reads.

Jobs due together are delivered together: a message scheduled with
``batch`` (``{"v":1,"func":...,"key":...,"batch":true}``) names a function
that takes a *list* of keys, and the broker builds one package for several
such messages of one ``func`` handed out at once (:func:`batch_package`).
Each job keeps its own message, so leases, re-delivery and dead letters
stay per job, and ``find(key)`` reads names only; the package's ack id
joins the messages' ids (:data:`ACK_SEPARATOR`).

One task's batch messages may need no content at all: a queue given
:func:`implied_payloads` for ``func`` (the file queue, when
``JOBS_QUEUE_IMPLIED_TASK`` names it) stores the batch message of ``func``
for a key as an empty entry, and hands it out with this payload again. For
the jobs' runs, the message written at every create is then a name and
nothing else.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from django.utils import timezone
from django_q.conf import Conf
from django_q.signing import SignedPackage

from storage.messages import KEY_PATTERN

FORMAT_VERSION = 1

# A dotted path to a module-level function, as django-q2's worker resolves it.
_FUNC_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


class UnreadableTaskMessage(ValueError):
    """A message that claims to be a scheduled task but cannot be run."""


@dataclass(frozen=True)
class ScheduledTask:
    """What a scheduled message asks for: call ``func(key)``, or ``func([key, ...])``
    together with other messages of ``func`` when ``batch``."""

    func: str
    key: str
    batch: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.func, str) or _FUNC_PATTERN.fullmatch(self.func) is None:
            raise UnreadableTaskMessage(f"not a dotted path to a function: {self.func!r}")
        if not isinstance(self.key, str) or KEY_PATTERN.fullmatch(self.key) is None:
            raise UnreadableTaskMessage(f"not a job id: {self.key!r}")

    def encode(self) -> bytes:
        # Both fields were checked against patterns without quotes or
        # backslashes: formatting them is valid JSON, and cheaper than dumps.
        batch = ',"batch":true' if self.batch else ""
        return f'{{"v":{FORMAT_VERSION},"func":"{self.func}","key":"{self.key}"{batch}}}'.encode()

    @classmethod
    def decode(cls, payload: bytes) -> ScheduledTask | None:
        """The task ``payload`` stands for; None when it is a signed package instead."""
        if not payload.startswith(b"{"):
            return None
        try:
            # orjson: every job's message passes here (json.loads took a seventh of the pusher).
            document = orjson.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise UnreadableTaskMessage(f"not JSON: {exc}") from None
        if not isinstance(document, dict) or document.get("v") != FORMAT_VERSION:
            raise UnreadableTaskMessage(f"not a version {FORMAT_VERSION} task message")
        return cls(
            func=document.get("func"), key=document.get("key"), batch=document.get("batch") is True
        )

    def package(self) -> str:
        """The signed django-q2 package that runs ``func(key)``, as async_task builds it."""
        if self.batch:
            return batch_package(self.func, [self.key])
        # The key names the job in the cluster's log lines ("Processed ... (<key>)").
        return _signed(name=self.key, func=self.func, args=(self.key,))


# Joins the ids of the messages delivered in one package (ids never contain it).
ACK_SEPARATOR = ","


def batch_package(func: str, keys: list[str]) -> str:
    """The signed package that runs ``func(keys)`` for messages delivered together."""
    name = keys[0] if len(keys) == 1 else f"{keys[0]} and {len(keys) - 1} more"
    return _signed(name=name, func=func, args=(list(keys),))


def _signed(*, name: str, func: str, args: tuple) -> str:
    task = {
        "id": uuid.uuid4().hex,
        "name": name,
        "func": func,
        "args": args,
        "kwargs": {},
        "started": timezone.now(),
    }
    # The options async_task copies from the cluster's configuration.
    # ``sync`` is not one of them here: it runs a task inside the
    # enqueuing call, which a task scheduled for later cannot do.
    if Conf.CACHED:
        task["cached"] = Conf.CACHED
    if Conf.ACK_FAILURES:
        task["ack_failure"] = Conf.ACK_FAILURES
    return SignedPackage.dumps(task)


def implied_payloads(func: str) -> Callable[[str], bytes]:
    """The payload of the batch message that runs ``func`` for a key, as a function of the key.

    What a queue stores as an empty entry and gives back as this payload
    (see the module docstring); ``func`` is checked at once.
    """
    # UnreadableTaskMessage if func is bad. The key goes between head and
    # tail; a function path holds no quotes, so the key's field is found.
    field = b'"key":"' + b"0" * 26 + b'"'
    head, _, tail = ScheduledTask(func=func, key="0" * 26, batch=True).encode().partition(field)
    head, tail = head + b'"key":"', b'"' + tail

    def payload(key: str) -> bytes:
        # Called for every message queued and every empty one handed out:
        # the queue checked the key against KEY_PATTERN already.
        return head + key.encode() + tail

    return payload
