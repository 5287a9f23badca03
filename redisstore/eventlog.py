"""The change-event log on a Redis Stream: :class:`RedisEventLog`.

The same contract as the file log (:class:`storage.protocols.EventLog`:
``append``, ``latest_id``, ``read_after``, :class:`~storage.events.EventsLost`),
so the event streams of web servers on several machines follow one log.

Positions stay integers, as with the file log, so the event streams, their
in-memory buffers and ``Last-Event-ID`` work unchanged. A stream entry id
``<ms>-<seq>`` is the position ``ms * 2**20 + seq``: positions order as the
entries do, and the largest (until about 2248) has 19 digits and fits a
signed 64-bit integer. Redis numbers entries added within one millisecond
0, 1, 2, ...; the append script keeps ``seq`` below ``2**20`` by moving to
the next millisecond if a burst (or a server clock set back) ever gets
there. Position 0 means "from the oldest event kept".

The stream is capped near ``max_events`` (``XADD ... MAXLEN ~``, which
trims whole internal nodes, cheaply). A reader asking for the events after
a position is told :class:`EventsLost` when that position is older than the
oldest event kept while older events were trimmed, or lies beyond the
newest id ever given (the stream was deleted, or the position comes from
another Redis): it has missed events and should start over. Like the file
log's segments, this may also say so for a reader whose position is the
very last event trimmed.

Needs Redis 7.0 or newer (``XINFO STREAM``'s ``entries-added``).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import redis

from redisstore.connection import reporting_unavailable
from storage.events import EventsLost

SEQ_BITS = 20
_SEQ_LIMIT = 1 << SEQ_BITS
_FIELD = b"e"

# KEYS: the stream. ARGV: max events, then one payload per event, in order.
# Returns the id of the last entry added.
_APPEND = f"""
local function next_id(last)
    if last then
        local ms, seq = string.match(last, '^(%d+)-(%d+)$')
        if tonumber(seq) >= {_SEQ_LIMIT - 1} then
            return string.format('%d-0', tonumber(ms) + 1)
        end
    end
    return '*'
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local last = newest and newest[1]
for i = 2, #ARGV do
    last = redis.call(
        'XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], next_id(last), '{_FIELD.decode()}', ARGV[i]
    )
end
return last
"""


class RedisEventLog:
    def __init__(
        self, client: redis.Redis, *, namespace: str = "jobs", max_events: int = 20_000
    ) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, not {max_events!r}")
        self.client = client
        self.key = f"{namespace}:events"
        self.max_events = max_events
        self._append = client.register_script(_APPEND)

    def append(self, event: dict[str, Any]) -> int:
        """Add ``event``; return its id."""
        return position_of(self._append_all([event]))

    def append_many(self, events: list[dict[str, Any]]) -> None:
        """Add ``events`` in order, with one script call (one round trip)."""
        if events:
            self._append_all(events)

    def _append_all(self, events: list[dict[str, Any]]) -> bytes | str:
        # The JSON of json.dumps(event, separators=(",", ":"), ensure_ascii=False),
        # as the file log writes it (orjson: a batch of creates' events passes here).
        payloads = [orjson.dumps(event) for event in events]
        with reporting_unavailable(self.client):
            return self._append(keys=[self.key], args=[self.max_events, *payloads])

    def latest_id(self) -> int:
        """The id of the newest event: reading after it yields only new events."""
        with reporting_unavailable(self.client):
            try:
                info = self.client.xinfo_stream(self.key)
            except redis.exceptions.ResponseError as exc:
                if _is_missing(exc):
                    return 0  # nothing appended yet
                raise
        return position_of(info["last-generated-id"])

    def read_after(self, position: int, *, limit: int = 1000) -> tuple[list[tuple[int, dict]], int]:
        """Events after ``position``, and the position to continue from.

        ``position`` is a value returned earlier by this method, by
        :meth:`latest_id`, an event id, or 0 for every event kept.
        """
        if position < 0:
            raise ValueError(f"invalid position {position!r}")
        start = "-" if position == 0 else f"({entry_id_of(position)}"
        with reporting_unavailable(self.client):
            # One transaction: the entries and the stream's bounds as of the
            # same instant, so a trim in between cannot go unnoticed.
            pipe = self.client.pipeline(transaction=True)
            pipe.xrange(self.key, start, "+", count=limit)
            pipe.xinfo_stream(self.key)
            entries, info = pipe.execute(raise_on_error=False)
        if isinstance(entries, Exception):
            raise entries
        if isinstance(info, redis.exceptions.ResponseError) and _is_missing(info):
            # No stream: nothing was ever appended here, or it was deleted.
            if position:
                raise EventsLost(f"events after {position} are no longer kept")
            return [], 0
        if isinstance(info, Exception):
            raise info
        if position:
            trimmed = info["entries-added"] > info["length"]
            first = info["first-entry"]
            if (
                trimmed and first is not None and position < position_of(first[0])
            ) or position > position_of(info["last-generated-id"]):
                raise EventsLost(f"events after {position} are no longer kept")
        events: list[tuple[int, dict]] = []
        for entry_id, fields in entries:
            position = position_of(entry_id)
            try:
                events.append((position, json.loads(fields[_FIELD])))
            except (KeyError, ValueError):
                continue
        return events, position


def position_of(entry_id: bytes | str) -> int:
    """The integer position of a stream entry id ``<ms>-<seq>``."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    ms, _, seq = entry_id.partition("-")
    return (int(ms) << SEQ_BITS) | int(seq or 0)


def entry_id_of(position: int) -> str:
    """The stream entry id ``<ms>-<seq>`` of an integer position."""
    return f"{position >> SEQ_BITS}-{position & (_SEQ_LIMIT - 1)}"


def _is_missing(error: redis.exceptions.ResponseError) -> bool:
    return "no such key" in str(error).lower()
