"""The file names of the file queue (:mod:`filestore.queue`): its on-disk format.

Under ``root`` (``<data dir>/queue/<cluster name>/``)::

    ready/<bucket>/<due ms>_<deliveries>_<message id>_<key>
    leased/<lease expiry ms>_<deliveries>_<message id>_<key>[_<owner>]
    dead/<dead-lettered ms>_<deliveries>_<message id>_<key>

Times are milliseconds since the epoch (:func:`storage.times.to_ms`),
zero-padded to 15 digits, so names sort by time. ``deliveries`` counts how
often the message was handed out. The message id is 20 hex digits. ``key``
is the job id the message belongs to (26 characters of ``[0-9A-Z]``) or
``-`` for none. A file's content is the payload, nothing else (a few
bytes naming the task function: :mod:`storage.scheduled_tasks`), so every
routing decision is made on names alone and a payload is read only when
its message is handed out. An empty file with a key stands for the
queue's implied payload for that key, when it has one: in the file
broker's queues, the batch run of the job the key names
(:func:`storage.scheduled_tasks.implied_payloads`), so the message a create
writes for its job is a name made in its bucket and no data: a link to an
empty file of its process, ``empty/<pid>.<token>`` under ``root``
(:mod:`filestore.empty_files`). The ack id
of a leased message is its name in ``leased/``. A leased name may end in
the lease's owner, the worker cluster that took it (``<pid scope>-<pid>``,
:mod:`storage.owners`); names written before owners were recorded lack
it, and their leases only run out.

Ready messages are sharded by due time: ``<bucket>`` is the due time,
rounded down to a multiple of ``bucket_seconds``, in the same 15-digit
form. ``dequeue`` lists the bucket names, then only the buckets whose
start has come, oldest first, and stops as soon as it holds ``limit``
messages. So handing out due messages costs the number of buckets plus
the size of the due bucket, whatever the number of messages waiting for
later; and a bucket being drained is listed once, not once per message.
Empty buckets whose whole time span is past are removed. The default span
of 1 s keeps a bucket to about one second of creates (a burst of a few
thousand at most), while jobs due within the next 5 minutes make about 300
bucket names to list.

Temp files live in ``tmp_dir`` (same file system, named by
:func:`filestore.atomic.write_temp`), never under ``root``: every name
under ``root`` is a complete message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storage.owners import OWNER_PATTERN

_NAME_PATTERN = re.compile(
    r"(?P<at_ms>\d{15})_(?P<deliveries>\d{1,6})_(?P<message_id>[0-9a-f]{20})_(?P<key>[0-9A-Z]{26}|-)"
    rf"(?:_(?P<owner>{OWNER_PATTERN.pattern}))?"
)
_BUCKET_PATTERN = re.compile(r"\d{15}")
_NO_KEY = "-"


@dataclass(frozen=True)
class MessageName:
    """A message file name: the fields routing needs, without reading the file.

    ``at_ms`` is the due time of a ready message, the lease expiry of a
    leased one and the time of death of a dead one. ``owner`` is set on
    leased names only: the cluster holding the lease, when known.
    """

    at_ms: int
    deliveries: int
    message_id: str
    key: str | None
    owner: str | None = None

    @classmethod
    def parse(cls, name: str) -> MessageName | None:
        match = _NAME_PATTERN.fullmatch(name)
        if match is None:
            return None
        key = match["key"]
        return cls(
            at_ms=int(match["at_ms"]),
            deliveries=int(match["deliveries"]),
            message_id=match["message_id"],
            key=None if key == _NO_KEY else key,
            owner=match["owner"],
        )

    def __str__(self) -> str:
        key = self.key or _NO_KEY
        owner = f"_{self.owner}" if self.owner else ""
        return f"{time_text(self.at_ms)}_{self.deliveries}_{self.message_id}_{key}{owner}"


def parse_ack_id(ack_id: str) -> MessageName:
    """The lease an ack id names; ``ValueError`` for anything else.

    Ack ids come back from outside (django-q2 carries them through its
    processes); checking them first also keeps a crafted one from naming a
    path outside ``leased/``.
    """
    lease = MessageName.parse(ack_id) if isinstance(ack_id, str) else None
    if lease is None:
        raise ValueError(f"invalid ack id {ack_id!r}")
    return lease


def time_text(at_ms: int) -> str:
    """A time in milliseconds as names write it: 15 digits, so that as text
    the names sort (and compare) as their times do."""
    return f"{at_ms:015d}"


def bucket_name(start_ms: int) -> str:
    return time_text(start_ms)


def is_bucket_name(name: str) -> bool:
    return _BUCKET_PATTERN.fullmatch(name) is not None
