"""Names unique to this process, made without a system call each.

Temp files and spare files carry the pid of the process that named them
(recovery asks whether that process still lives) and a token that tells
apart the names of one process, and those of an earlier process that had
the same pid. The store names a few files per job: rather than a
``getpid`` and a ``getrandom`` per name, the pid is read and a random
prefix drawn once per process (again in a forked child), and a counter
tells the names of the process apart.
"""

from __future__ import annotations

import itertools
import os
import secrets

_pid = 0
_prefix = ""
_counter = itertools.count()


def _start() -> None:
    global _pid, _prefix, _counter
    _pid = os.getpid()
    _prefix = secrets.token_hex(6)
    _counter = itertools.count()


_start()
os.register_at_fork(after_in_child=_start)


def pid() -> int:
    """This process's pid, as of its start or its fork."""
    return _pid


def token() -> str:
    """Hex digits no other call in this process, or in an earlier one with its pid, returns."""
    return f"{_prefix}{next(_counter):x}"
