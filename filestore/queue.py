"""A message queue on files, with delayed delivery and leases.

The names of the files (the on-disk format) and how they are sharded are
described in :mod:`filestore.queue_names`; what a message's content means
is the broker's business (:mod:`storage.scheduled_tasks`).

Crash safety, step by step:

- ``enqueue``: the payload is written to a temp file and fsynced, renamed
  into its bucket, and the bucket is fsynced (both fsyncs skipped when the
  caller says the message need not survive a power cut). Dying before the rename
  leaves only a temp file, which is not in the queue; after the fsync the
  message survives a power cut. If a dequeue removes the (empty, past)
  bucket between our ``mkdir`` and our rename, the rename fails and we
  make the bucket again and retry: ``rmdir`` never removes a bucket that
  holds a message. ``enqueue_many`` does the same for each message and
  fsyncs each bucket once, after the last rename: a message is durable
  when the call returns, as with ``enqueue``.
- ``enqueue`` of the queue's implied payload (see ``implied_payload``):
  the message is an empty file, and only its bucket is fsynced. It is
  made in its bucket as a hard link to an empty file the process shares
  between its messages (:mod:`filestore.empty_files`, in ``empty/`` under
  ``root``): one ``link()``, no inode allocated. Nothing is ever written
  into a message, so there is no content to tear: from the instant the
  name exists it is a complete message. The same retry covers a bucket
  removed under it.
- ``dequeue`` claims a message by renaming it from its bucket into
  ``leased/`` under a name carrying the lease expiry and the incremented
  delivery count. A rename is atomic, so of several consumers (threads or
  processes) exactly one succeeds and the others get ``ENOENT`` and move
  on. The claim is not fsynced: if a power cut undoes it, the message is
  ready again and is delivered again, which at-least-once delivery allows.
  A claimed message that cannot be read (a directory planted under a
  message's name, a disk error) is dead-lettered there and then, so one
  bad entry never stops the queue.
- ``acknowledge`` removes the leased file's name, without an fsync: if a
  power cut (or a death before the removal) brings the lease back, it
  runs out and the message is delivered again, which at-least-once
  allows. A message without a key is kept as a spare file to write again
  (:mod:`filestore.spares`). A keyed one is unlinked: it may be an empty
  message, a name of a file shared with other messages, and a spare is
  written into when reused, which would write into every name of it. (A
  keyed message with a payload of its own is unlinked too: it costs its
  inode, not safety.) The rule needs no ``stat`` and no setting: a queue
  opened without ``implied_payload`` removes the same way.
- Lease expiry renames a leased message whose lease ran out back into a
  bucket (due now) or, once it was delivered ``max_deliveries`` times,
  into ``dead/``; again one rename decides, so two processes expiring
  the same lease never both act on it. The ack id of a lease is its file
  name, so a late ``acknowledge`` by a consumer whose lease has run out
  finds nothing and cannot remove the message's next lease.
- ``release_leases_of`` does what expiry does, at once, to the leases of
  owners known dead (a lease's name ends in its owner): the same renames,
  so the same arguments hold; the delivery count is kept.
- Dead-lettering fsyncs ``dead/`` before calling ``on_dead``. If the
  process dies in between, the message is still in ``dead/`` and
  :meth:`FileQueue.find` / :meth:`FileQueue.dead_keys` report it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from filestore import queue_inspection
from filestore.atomic import (
    ensure_dir,
    fsync_dir,
    hooks,
    read_bytes,
    retire,
    unlink_durable,
    write_temp,
    write_temp_name,
)
from filestore.directories import listdir, remove_if_empty, unlink_all
from filestore.empty_files import shared_empty_file
from filestore.queue_names import (
    MessageName,
    bucket_name,
    is_bucket_name,
    parse_ack_id,
    time_text,
)
from storage import dead_letters
from storage.messages import (
    MessageInfo,
    NewMessage,
    QueueCounts,
    State,
    check_lease_settings,
)
from storage.times import to_ms

logger = logging.getLogger(__name__)

ALL_STATES: tuple[State, ...] = ("ready", "leased", "dead")

# Lease expiry lists leased/ on a dequeue at most this often: expiry is
# rare, while the pusher may dequeue many times a second.
_EXPIRY_CHECK_SECONDS = 1.0

# How often a move into a bucket is retried when a concurrent dequeue
# removes the bucket under it; each retry needs a new, empty, past bucket
# to vanish again, so a few attempts are plenty.
_MOVE_ATTEMPTS = 5


def _read_payload(path: str) -> bytes:
    """A leased message's payload, in one system call when it is empty.

    Most messages are (a job's run is implied by the key in its name): a
    stat tells that where a read takes three calls (open, read, close).
    Anything else is read as before, so a directory or a named pipe planted
    in the queue fails or reads the same way. A message file is complete
    once it has its name, and a leased one is this consumer's alone.
    """
    status = os.stat(path)
    if status.st_size == 0 and stat.S_ISREG(status.st_mode):
        return b""
    return read_bytes(path)


class FileQueue:
    """One named queue under ``root``; see the module docstring for the format."""

    def __init__(
        self,
        root: Path,
        tmp_dir: Path,
        *,
        lease_seconds: float,
        max_deliveries: int,
        clock: Callable[[], float] = time.time,
        on_dead: Callable[[str | None, bytes], None] | None = None,
        bucket_seconds: float = 1.0,
        implied_payload: Callable[[str], bytes] | None = None,
    ) -> None:
        check_lease_settings(lease_seconds, max_deliveries)
        if bucket_seconds < 0.001:
            raise ValueError(f"bucket_seconds must be at least 0.001, not {bucket_seconds!r}")
        self.root = root
        self.tmp_dir = tmp_dir
        self.lease_seconds = lease_seconds
        self.max_deliveries = max_deliveries
        self.clock = clock
        self.on_dead = on_dead
        # A keyed message whose payload is implied_payload(key) is stored
        # as an empty file, and an empty file is read back as that payload.
        self.implied_payload = implied_payload
        self._bucket_ms = int(bucket_seconds * 1000)
        self._ready = root / "ready"
        self._leased = root / "leased"
        self._dead = root / "dead"
        # The same as text: the paths of every message are joined from these
        # with f-strings, not pathlib (see atomic.write_temp_name).
        self._ready_dir = os.fspath(self._ready)
        self._leased_dir = os.fspath(self._leased)
        self._tmp_dir = os.fspath(tmp_dir)
        self._empty = shared_empty_file(root / "empty")
        self._next_expiry_check = float("-inf")
        # Set by dequeue when it found nothing more due: when the next message
        # falls due (None: nothing waiting), so a consumer can sleep until then.
        self.next_due_at: float | None = None
        # (bucket start, its names not yet handed out): see _due_names.
        self._listing: tuple[int, list[str]] | None = None
        for directory in (self._ready, self._leased, self._dead, tmp_dir):
            ensure_dir(directory)

    # -- producing and consuming ---------------------------------------------

    def enqueue(
        self,
        payload: bytes | str,
        *,
        due_at: float | None = None,
        key: str | None = None,
        durable: bool = True,
    ) -> str:
        """Add a message that becomes visible at ``due_at`` (default: now); return its id.

        With ``durable=False`` the message is still written atomically (no
        reader ever sees part of it) but not fsynced: a power cut may lose
        it. For callers that can rebuild a lost message from state of their
        own (job messages are re-enqueued by the recovery pass), this saves
        two fsyncs per message.

        A keyed message whose payload is the queue's ``implied_payload``
        for its key is created as an empty file in its bucket: no temp
        file, no data, no rename. So, with an implied payload, a keyed
        message cannot have an empty payload of its own (``ValueError``).
        """
        (message_id,) = self.enqueue_many([NewMessage(payload, due_at, key)], durable=durable)
        return message_id

    def enqueue_many(self, messages: Sequence[NewMessage], *, durable: bool = True) -> list[str]:
        """Add messages, in order, each as :meth:`enqueue` would; return their ids.

        Every message is checked before any is written (``ValueError``).
        With ``durable``, each bucket that received one is fsynced once, at
        the end: the messages survive a power cut once this returns. A
        failure part way raises, and the messages placed before it stay.
        """
        now = self.clock()
        named = [self._named(message, now) for message in messages]
        for name, payload in named:
            if payload is None:
                self._into_bucket(name, self._empty.link, durable=False)
            else:
                self._place_temp(write_temp_name(self._tmp_dir, payload, durable=durable), name)
        if durable:
            for bucket in dict.fromkeys(self._bucket(name.at_ms) for name, _ in named):
                fsync_dir(bucket)
        return [name.message_id for name, _ in named]

    def _named(self, message: NewMessage, now: float) -> tuple[MessageName, bytes | None]:
        """A new message's name, and the payload to write (None: an empty file stands for it)."""
        payload, at, key = message.checked(now)
        name = MessageName(at_ms=to_ms(at), deliveries=0, message_id=secrets.token_hex(10), key=key)
        if key is not None and self.implied_payload is not None:
            if payload == self.implied_payload(key):
                return name, None
            if not payload:
                raise ValueError(
                    "an empty payload cannot be queued with a key here: "
                    "an empty message stands for the queue's implied payload"
                )
        return name, payload

    def dequeue(self, limit: int, *, owner: str | None = None) -> list[tuple[str, bytes]]:
        """Lease up to ``limit`` due messages, oldest due first, as ``(ack_id, payload)``.

        ``owner`` (a :mod:`storage.owners` identity) is recorded in each
        lease, so :meth:`release_leases_of` can take them back once it died.
        """
        if limit < 1:
            return []
        now_ms = to_ms(self.clock())
        self._expire_leases(now_ms)
        claimed: list[tuple[str, bytes]] = []
        self.next_due_at = None
        for bucket_start in self._bucket_starts():
            if bucket_start > now_ms:
                # This and every later bucket only hold messages due later.
                # Sleeping until the bucket starts is precise enough: then
                # its names are listed and tell the exact due times.
                self.next_due_at = bucket_start / 1000
                break
            bucket = self._bucket(bucket_start)
            names = self._due_names(bucket_start)
            if not names:
                if bucket_start + self._bucket_ms <= now_ms:
                    remove_if_empty(bucket)
                continue
            while names:
                ready_name = names[-1]
                message = MessageName.parse(ready_name)
                if message is None:
                    names.pop()
                    continue
                if message.at_ms > now_ms:
                    # Not due yet: forget the listing, so that a message
                    # enqueued meanwhile for an earlier time is seen next time.
                    self._listing = None
                    self.next_due_at = message.at_ms / 1000
                    return claimed
                names.pop()
                lease = replace(
                    message,
                    at_ms=now_ms + int(self.lease_seconds * 1000),
                    deliveries=message.deliveries + 1,
                    owner=owner,
                )
                leased_name = str(lease)
                leased_path = f"{self._leased_dir}/{leased_name}"
                try:
                    os.rename(f"{bucket}/{ready_name}", leased_path)
                except FileNotFoundError:
                    continue  # another consumer claimed it first
                try:
                    payload = _read_payload(leased_path)
                except FileNotFoundError:
                    # Only possible with a lease shorter than this read: an
                    # expiry pass already put the message back.
                    continue
                except OSError as exc:
                    # A directory planted under a message's name, a disk
                    # error: raising would stop the consumer at this entry
                    # on every pass. It is dead-lettered at once instead.
                    logger.error("message %s cannot be read (%s)", leased_name, exc)
                    self._bury(Path(leased_path), lease, now_ms)
                    continue
                claimed.append((leased_name, payload or self._empty_payload(message)))
                if len(claimed) >= limit:
                    return claimed
        return claimed

    def due_within(self, seconds: float) -> int:
        """How many ready messages fall due within ``seconds`` from now (or are due).

        Lists only the buckets up to that time: a look at the near future,
        as cheap as a dequeue. A bucket that ends before the horizon is
        counted by its listing alone, as :meth:`scheduled_around` counts
        one; in the bucket the horizon falls in, each name's due time is
        compared with it as text (a name starts with it, 15 digits: see
        :mod:`filestore.queue_names`), without parsing the name. Parsing
        them took half of a look's CPU: 5.7-6.5 against 3.0-3.3 ms for a
        look into six seconds of a thousand messages each.
        """
        horizon_ms = to_ms(self.clock() + seconds)
        horizon = time_text(horizon_ms)  # as a message's name starts with it
        digits = len(horizon)
        count = 0
        for bucket_start in self._bucket_starts():
            if bucket_start > horizon_ms:
                break
            names = listdir(self._bucket(bucket_start))
            if bucket_start + self._bucket_ms <= horizon_ms:
                count += len(names)
                continue
            count += sum(1 for name in names if name[:digits] <= horizon)
        return count

    def scheduled_around(self, moment: float) -> int:
        """How many ready messages fall due in the bucket (one second) holding ``moment``:
        one listing of one bucket, cheap enough for admission control on every create."""
        return len(listdir(self._bucket(to_ms(moment))))

    def oldest_due_lateness(self) -> float:
        """How long the oldest due message has waited (0 when none is due): two listings."""
        now_ms = to_ms(self.clock())
        for bucket_start in self._bucket_starts():
            if bucket_start > now_ms:
                break
            due = [
                m.at_ms for m in map(MessageName.parse, listdir(self._bucket(bucket_start))) if m
            ]
            if due:
                return max(0.0, (now_ms - min(due)) / 1000)
        return 0.0

    def _due_names(self, bucket_start: int) -> list[str]:
        """The names left in a due bucket, latest first (so ``pop()`` takes the oldest).

        Draining a bucket of n messages one dequeue at a time must not list
        it n times: its sorted listing is kept while it is being drained and
        listed again only once used up (new arrivals are seen then).
        """
        if self._listing is not None and self._listing[0] == bucket_start and self._listing[1]:
            return self._listing[1]
        names = sorted(listdir(self._bucket(bucket_start)), reverse=True)
        self._listing = (bucket_start, names)
        return names

    def acknowledge(self, ack_id: str) -> None:
        """Remove a leased message for good; an unknown or already removed ack id is fine."""
        lease = parse_ack_id(ack_id)
        # Not fsynced: if a power cut brings the lease back, the message is
        # delivered again once it runs out, which at-least-once allows.
        path = f"{self._leased_dir}/{ack_id}"
        if lease.key is None:
            retire(path, tmp_dir=self._tmp_dir)  # kept to be written again (filestore.spares)
            return
        # Maybe a name of a shared empty file: never a spare (module docstring).
        hooks.step("unlink", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def fail(self, ack_id: str) -> None:
        """Move a leased message to ``dead/`` and report it through ``on_dead``."""
        lease = parse_ack_id(ack_id)
        self._bury(self._leased / ack_id, lease, to_ms(self.clock()))

    def release_leases_of(self, owners: Iterable[str]) -> int:
        """Hand out again, due now, the leased messages of ``owners``; return how many.

        For owners known dead: their leases would only run out. Each message
        keeps its delivery count, so one that keeps killing its worker is
        still dead-lettered after ``max_deliveries`` (here, when its last
        delivery's owner is found dead, as when that lease runs out).
        """
        owners = set(owners)
        if not owners:
            return 0
        now_ms = to_ms(self.clock())
        released = 0
        for name in listdir(self._leased):
            lease = MessageName.parse(name)
            if lease is None or lease.owner not in owners:
                continue
            if self._lease_ran_out(self._leased / name, lease, now_ms):
                released += 1
        if released:
            logger.warning("released %d leases of dead workers %s", released, sorted(owners))
        return released

    # -- introspection and maintenance (these scan every message) ------------

    def counts(self) -> QueueCounts:
        """Messages per state; ``due`` is the part of ``ready`` that may be handed out now."""
        return queue_inspection.counts(self._messages(ALL_STATES), now_ms=to_ms(self.clock()))

    def keys(self) -> set[str]:
        """Keys of all ready and leased messages: the jobs that still have a message."""
        return queue_inspection.keys(self._messages(("ready", "leased")))

    def dead_keys(self) -> set[str]:
        """Keys of all dead-lettered messages."""
        return queue_inspection.keys(self._messages(("dead",)))

    def find(self, key: str) -> list[MessageInfo]:
        """Every message of ``key``, in any state."""
        return queue_inspection.find(self._messages(ALL_STATES), key)

    def delete_key(self, key: str) -> int:
        """Remove every message of ``key`` (any state); return how many."""
        return unlink_all(
            path for _, path, message in self._messages(ALL_STATES) if message.key == key
        )

    def delete(self, message_id: str) -> bool:
        """Remove the message ``message_id`` (any state); return whether it existed."""
        removed = unlink_all(
            path
            for _, path, message in self._messages(ALL_STATES)
            if message.message_id == message_id
        )
        return removed > 0

    def purge(self) -> int:
        """Remove every ready and leased message; return how many. ``dead/`` is kept."""
        return unlink_all(path for _, path, _ in self._messages(("ready", "leased")))

    def ping(self) -> bool:
        """Whether the queue's directories exist and a durable write to ``tmp_dir`` works."""
        try:
            for directory in (self._ready, self._leased, self._dead):
                if not directory.is_dir():
                    return False
            unlink_durable(write_temp(self.tmp_dir, b"ping"))
        except OSError:
            logger.exception("queue %s is not writable", self.root)
            return False
        return True

    # -- internals ------------------------------------------------------------

    def _expire_leases(self, now_ms: int) -> None:
        now = now_ms / 1000
        # A wall clock set back must not postpone expiry by the size of the jump.
        if self._next_expiry_check - _EXPIRY_CHECK_SECONDS <= now < self._next_expiry_check:
            return
        self._next_expiry_check = now + _EXPIRY_CHECK_SECONDS
        for name in listdir(self._leased):
            lease = MessageName.parse(name)
            if lease is None or lease.at_ms > now_ms:
                continue
            if self._lease_ran_out(self._leased / name, lease, now_ms) == "ready":
                logger.warning(
                    "message %s (key %s) lease ran out after delivery %d; ready again",
                    lease.message_id,
                    lease.key,
                    lease.deliveries,
                )

    def _lease_ran_out(self, path: Path, lease: MessageName, now_ms: int) -> str | None:
        """Move a leased message back to ready (due now) or, at its last delivery, to dead.

        Returns where it went, or None when someone else moved it first.
        """
        if lease.deliveries >= self.max_deliveries:
            return "dead" if self._bury(path, lease, now_ms) else None
        if self._move_into_ready(path, replace(lease, at_ms=now_ms, owner=None)):
            return "ready"
        return None

    def _move_into_ready(
        self, source: str | Path, name: MessageName, *, durable: bool = True
    ) -> bool:
        """Rename ``source`` into its bucket; False if ``source`` is gone (someone else won)."""

        def rename(target: str) -> None:
            hooks.step("rename", target)
            os.rename(source, target)

        return self._into_bucket(
            name, rename, durable=durable, gone=lambda: not os.path.lexists(source)
        )

    def _into_bucket(
        self,
        name: MessageName,
        place: Callable[[str], None],
        *,
        durable: bool,
        gone: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Make the message ``name`` in its bucket with ``place(path)``; fsync the bucket if
        ``durable``. False when ``place`` failed and ``gone()`` says its file is gone."""
        bucket = self._bucket(name.at_ms)
        target = f"{bucket}/{name}"
        for _ in range(_MOVE_ATTEMPTS):
            try:
                place(target)
            except FileNotFoundError:
                if gone():
                    return False
                # The bucket does not exist yet, or a dequeue just removed it
                # as empty and past: make it (again) and retry.
                ensure_dir(Path(bucket))
                continue
            if durable:
                fsync_dir(bucket)
            return True
        raise OSError(
            errno.ENOENT, f"bucket keeps vanishing while a message is put in it: {bucket}"
        )

    def _place_temp(self, tmp: str, name: MessageName) -> None:
        """Rename the temp file ``tmp`` into its bucket as ``name`` (its bucket not
        flushed); remove it if that fails."""
        try:
            self._move_into_ready(tmp, name, durable=False)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _empty_payload(self, message: MessageName) -> bytes:
        """What an empty message file holds: the implied payload of its key, else nothing."""
        if message.key is None or self.implied_payload is None:
            return b""
        return self.implied_payload(message.key)

    def _bury(self, source: Path, message: MessageName, now_ms: int) -> bool:
        dead_path = self._dead / str(replace(message, at_ms=now_ms, owner=None))
        try:
            os.rename(source, dead_path)
        except FileNotFoundError:
            return False  # acknowledged, expired or buried by someone else meanwhile
        fsync_dir(self._dead)
        logger.error(
            "message %s (key %s) dead-lettered after %d deliveries",
            message.message_id,
            message.key,
            message.deliveries,
        )
        if self.on_dead is None:
            return True
        try:
            payload = read_bytes(dead_path)
        except OSError:
            # An operator removed it already, or it cannot be read: still report the key.
            payload = b""
        dead_letters.report(self.on_dead, message.key, payload or self._empty_payload(message))
        return True

    def _bucket(self, at_ms: int) -> str:
        """The ready bucket that holds messages due at ``at_ms`` (its path, as text)."""
        return f"{self._ready_dir}/{bucket_name(at_ms - at_ms % self._bucket_ms)}"

    def _bucket_starts(self) -> list[int]:
        return sorted(int(name) for name in listdir(self._ready) if is_bucket_name(name))

    def _messages(self, states: Iterable[State]) -> Iterator[tuple[State, Path, MessageName]]:
        for state in states:
            if state == "ready":
                directories = [self._ready / bucket_name(start) for start in self._bucket_starts()]
            else:
                directories = [self._leased if state == "leased" else self._dead]
            for directory in directories:
                for name in listdir(directory):
                    message = MessageName.parse(name)
                    if message is not None:
                        yield state, directory / name, message
