"""Who holds a lease: the identity of a worker cluster, and whether its process lives.

An *owner* is ``<pid scope>-<pid>``: the :data:`PID_SCOPE` of the host and
PID namespace the cluster runs in, and the pid of the cluster's main
process (``manage.py qcluster``). Every process of the cluster (pusher,
workers, monitor) names the same owner: the main process
exports it in :data:`OWNER_ENV` before it starts them, and its heartbeat
carries it too. A queue lease and a job's run lease record their owner, so
that once the owner is known dead, its leases can be taken back at once
instead of when they run out.

A pid says something only within its scope: :func:`pid_alive` is asked
only about owners of our own scope. Owners of other scopes (other hosts
or containers) are judged by their heartbeat (see ``jobs.liveness``).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket


def _pid_scope() -> str:
    """Where this process's pid means something: its host and PID namespace.

    Containers sharing a data volume (web and worker) each number their own
    processes, so a pid (of a lease's owner, of a temp file's writer) can
    only be looked up by a process of the same scope.
    """
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha256(f"{socket.gethostname()}/{namespace}".encode()).hexdigest()[:12]


PID_SCOPE = _pid_scope()

OWNER_ENV = "JOBS_CLUSTER_OWNER"
OWNER_PATTERN = re.compile(r"(?P<scope>[0-9a-f]{12})-(?P<pid>[1-9][0-9]{0,9})")


def owner_for(pid: int) -> str:
    """The owner a cluster whose main process is ``pid`` in our scope goes by."""
    return f"{PID_SCOPE}-{pid}"


def current_owner() -> str:
    """The owner of this process's cluster; this process itself outside a cluster."""
    exported = os.environ.get(OWNER_ENV)
    if exported and OWNER_PATTERN.fullmatch(exported):
        return exported
    return owner_for(os.getpid())


def parse_owner(owner: object) -> tuple[str, int] | None:
    """``(scope, pid)`` of an owner, or None when ``owner`` is not one."""
    match = OWNER_PATTERN.fullmatch(owner) if isinstance(owner, str) else None
    if match is None:
        return None
    return match["scope"], int(match["pid"])


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists in our PID namespace (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The state follows the command name, which may hold spaces and parentheses.
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
    except (OSError, IndexError):
        return True  # no /proc to ask: the signal said it exists
