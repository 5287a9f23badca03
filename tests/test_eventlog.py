"""The event log on files: its segments, rotation and a log that starts over.

What every event log must do (every change once, in order, with ids a client
can resume from) is the contract in tests/contract/test_eventlog_contract.py,
run against the file log and the Redis stream alike.
"""

from __future__ import annotations

import shutil

import pytest

from filestore.eventlog import FileEventLog
from storage.events import EventsLost


@pytest.fixture
def log(data_dir) -> FileEventLog:
    return FileEventLog(data_dir / "events")


def _events(n: int, start: int = 0) -> list[dict]:
    return [{"type": "job", "n": i, "text": "é" * (i % 3)} for i in range(start, start + n)]


def _read_all(log: FileEventLog, position: int = 0, limit: int = 1000) -> tuple[list, int]:
    everything = []
    while True:
        events, position = log.read_after(position, limit=limit)
        if not events:
            return everything, position
        everything += events


def test_it_holds_back_a_line_still_being_written(log):
    log.append({"n": 0})
    segment = next(log.root.iterdir())
    with open(segment, "ab") as handle:
        handle.write(b'{"n": 1, "half": "wri')

    events, position = log.read_after(0)
    assert [event for _, event in events] == [{"n": 0}]

    with open(segment, "ab") as handle:
        handle.write(b'tten"}\n')
    events, _ = log.read_after(position)
    assert [event for _, event in events] == [{"n": 1, "half": "written"}]


def test_it_keeps_the_newest_segments_and_reports_lost_events(data_dir):
    log = FileEventLog(data_dir / "events", segment_bytes=300, keep_segments=3)
    log.append({"n": 0})
    first_position = log.latest_id()
    reader_position = 0
    seen = []
    for event in _events(200, start=1):
        log.append(event)
        events, reader_position = log.read_after(reader_position)
        seen += [event for _, event in events]

    assert seen == [{"n": 0}, *_events(200, start=1)]  # a reader keeping up misses nothing
    assert len(list(log.root.iterdir())) == 3
    with pytest.raises(EventsLost):
        log.read_after(first_position)
    kept, _ = _read_all(log)
    assert [event for _, event in kept] == _events(200, start=1)[-len(kept) :]
    assert 0 < len(kept) < 200


def _append_many(root, writer: int, count: int, start) -> None:
    log = FileEventLog(root, segment_bytes=4096, keep_segments=1000)
    start.wait()
    for n in range(count):
        log.append({"writer": writer, "n": n, "pad": "x" * (n % 50)})


def test_it_tells_a_reader_after_an_id_the_log_never_reached_to_start_over(data_dir):
    """A client's Last-Event-ID from before the data directory was reset."""
    old = FileEventLog(data_dir / "old-events")
    for event in _events(10):
        old.append(event)
    remembered = old.latest_id()
    log = FileEventLog(data_dir / "events")
    log.append({"n": 0})

    with pytest.raises(EventsLost):
        log.read_after(remembered)


def test_it_tells_a_reader_after_a_segment_the_log_never_reached_to_start_over(data_dir):
    old = FileEventLog(data_dir / "old-events", segment_bytes=100)
    for event in _events(10):
        old.append(event)
    remembered = old.latest_id()
    log = FileEventLog(data_dir / "events", segment_bytes=100)
    log.append({"n": 0})
    assert len(list(old.root.iterdir())) > len(list(log.root.iterdir()))

    with pytest.raises(EventsLost):
        log.read_after(remembered)


def test_appends_reach_readers_after_the_log_directory_was_replaced(data_dir):
    log = FileEventLog(data_dir / "events")
    log.append({"n": 0})
    shutil.rmtree(log.root)  # the data directory reset under a running process

    log.append({"n": 1})

    events, _ = FileEventLog(data_dir / "events").read_after(0)
    assert [event for _, event in events] == [{"n": 1}]
