"""Time-ordered job ids (ULID layout: 48-bit milliseconds + 80 random bits).

Ids are 26 characters of Crockford's base32, so comparing two ids as
strings compares their creation times, and a directory listing sorted by
name is a listing sorted by creation time. Within one process, ids made in
the same millisecond still increase (the random part is incremented), so a
burst of creates keeps its order.
"""

from __future__ import annotations

import base64
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


# RFC 4648's base32 digits, in the order of ours: its encoder (in C) then
# writes an id's 130 bits in one step, where writing a digit at a time in
# Python took about 5 % of a create's Python (cProfile of a batch of creates).
_FROM_BASE32 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ALPHABET.encode())


def _encode(ms: int, random_part: int) -> str:
    """The 26 digits of an id: 48 bits of milliseconds, then 80 random bits.

    26 digits carry 130 bits, 160 bits are 32: the value is encoded as 20
    bytes, whose first 6 digits are always 0, and those are cut.
    """
    value = (ms << 80) | random_part
    return base64.b32encode(value.to_bytes(20, "big"))[6:].translate(_FROM_BASE32).decode()


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
    return _encode(ms, random_part)


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def id_timestamp(job_id: str) -> float:
    """Creation time (seconds) encoded in an id."""
    ms = 0
    for char in job_id[:10]:
        ms = ms * 32 + ALPHABET.index(char)
    return ms / 1000
