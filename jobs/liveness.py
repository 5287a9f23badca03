"""Which worker clusters are known dead, so their leases can be taken back at once.

A lease names its owner, a worker cluster (:mod:`storage.owners`). Once
the owner is known dead, its runs are gone too, and waiting for the leases
to run out (``JOBS_QUEUE_RETRY``, 90 s by default) only delays its jobs.
Known dead means positive evidence, never a guess:

- an owner of our own PID scope (this host, this PID namespace) is dead
  when its main process is gone. Its cluster's other processes die with it
  (the worker sets that up, :func:`jobs.worker.die_with_parent`), so no run
  of it can still be going. A live pid means alive, whatever its heartbeat
  says (a reused pid only delays the takeover until the lease runs out);
- an owner of another scope (another host or container), whose pid means
  nothing here, is dead when its heartbeat is older than
  ``JOBS_HEARTBEAT_MAX_AGE``. A fresh heartbeat means alive; no heartbeat
  at all (a cluster that stopped cleanly removes its own) proves nothing.

This process's own cluster is never dead. Anything else (an owner that is
not an owner, no heartbeat) is unknown, and only the lease's time ends it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings

from jobs import backends, clock, store
from storage.owners import PID_SCOPE, current_owner, parse_owner, pid_alive


def owner_is_dead(
    owner: str,
    *,
    heartbeats: Mapping[str, float],
    now: float,
    max_age: float,
    scope: str = PID_SCOPE,
    me: str | None = None,
    is_pid_alive: Callable[[int], bool] = pid_alive,
) -> bool:
    """Whether ``owner`` is known dead (see the module docstring).

    ``heartbeats`` maps owners to the time of their last beat; ``me`` is
    this process's own owner (default :func:`current_owner`).
    """
    if owner == (me or current_owner()):
        return False
    parsed = parse_owner(owner)
    if parsed is None:
        return False
    owner_scope, pid = parsed
    if owner_scope == scope:
        return not is_pid_alive(pid)
    beat = heartbeats.get(owner)
    return beat is not None and now - beat > max_age


def last_beats(beats: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The time of the last beat of each owner that heartbeats name."""
    last: dict[str, float] = {}
    for beat in beats:
        owner = beat.get("owner")
        if isinstance(owner, str) and beat["at"] > last.get(owner, float("-inf")):
            last[owner] = beat["at"]
    return last


class DeadOwners:
    """Answers "is this owner known dead?" from the heartbeat store and this host's pids.

    The heartbeats are read once, on the first question that needs them
    (owners of other hosts), so a batch of claims costs at most one read
    and a batch with no running job costs none.
    """

    def __init__(self, *, now: float | None = None) -> None:
        self.now = clock.now() if now is None else now
        self.max_age = float(settings.JOBS_HEARTBEAT_MAX_AGE)
        self._heartbeats: dict[str, float] | None = None

    def heartbeats(self) -> dict[str, float]:
        if self._heartbeats is None:
            self._heartbeats = last_beats(backends.heartbeats().beats())
        return self._heartbeats

    def __call__(self, owner: str) -> bool:
        parsed = parse_owner(owner)
        heartbeats = {} if parsed is None or parsed[0] == PID_SCOPE else self.heartbeats()
        return owner_is_dead(owner, heartbeats=heartbeats, now=self.now, max_age=self.max_age)

    def among_heartbeats(self) -> set[str]:
        """The owners named by heartbeats that are known dead: whose leases to release."""
        return {owner for owner in self.heartbeats() if self(owner)}


def release_leases_of_dead_owners() -> int:
    """Put back on the queue, due now, the leased messages of clusters known dead."""
    dead = DeadOwners().among_heartbeats()
    if not dead:
        return 0
    return store.broker().release_leases_of(dead)
