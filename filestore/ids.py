"""Time-ordered job ids (ULID layout: 48-bit milliseconds + 80 random bits).

Ids are 26 characters of Crockford's base32, so comparing two ids as
strings compares their creation times, and a directory listing sorted by
name is a listing sorted by creation time. Within one process, ids made in
the same millisecond still increase (the random part is incremented), so a
burst of creates keeps its order.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_LENGTH = 26
ID_PATTERN = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")

_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def _forget_last_id() -> None:
    # A forked child must not continue the parent's sequence: both would
    # hand out the same "next" id within one millisecond.
    global _last_ms
    _last_ms = -1


os.register_at_fork(after_in_child=_forget_last_id)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(now: float | None = None) -> str:
    """A new id for the time ``now`` (seconds since the epoch, default: the clock)."""
    global _last_ms, _last_random
    ms = int((time.time() if now is None else now) * 1000)
    with _lock:
        if ms == _last_ms and _last_random < (1 << 80) - 1:
            _last_random += 1
        else:
            _last_ms, _last_random = ms, secrets.randbits(80)
        random_part = _last_random
    return _encode(ms, 10) + _encode(random_part, 16)


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def id_timestamp(job_id: str) -> float:
    """Creation time (seconds) encoded in an id."""
    ms = 0
    for char in job_id[:10]:
        ms = ms * 32 + ALPHABET.index(char)
    return ms / 1000
