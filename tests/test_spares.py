"""Spare files: files done with are kept and written again instead of deleted and created."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from filestore import atomic, spares
from filestore.repository import JobRepository
from filestore.spares import REUSE_AFTER_SECONDS, SpareFiles
from jobs.model import STATUSES


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pool(tmp_path: Path, clock: Clock) -> SpareFiles:
    return SpareFiles(tmp_path / "spare", clock=clock)


def _spares(pool: SpareFiles) -> int:
    return len(list(pool.directory.iterdir())) if pool.directory.exists() else 0


def _file(path: Path, data: bytes = b"old content, longer than the new one") -> Path:
    path.write_bytes(data)
    return path


def test_a_retired_file_leaves_its_name_and_waits_in_the_pool(tmp_path, pool):
    path = _file(tmp_path / "done.json")

    assert pool.retire(path) is True

    assert not path.exists()
    assert _spares(pool) == 1
    assert pool.retire(path) is False  # already gone: as an unlink would say


def test_a_spare_is_reused_only_once_it_has_waited(tmp_path, pool, clock):
    inode = os.stat(_file(tmp_path / "done.json")).st_ino
    pool.retire(tmp_path / "done.json")

    assert pool.take(tmp_path / "new.tmp") is False  # a reader may still hold it open
    clock.now += REUSE_AFTER_SECONDS
    assert pool.take(tmp_path / "new.tmp") is True

    assert os.stat(tmp_path / "new.tmp").st_ino == inode
    assert _spares(pool) == 0
    assert pool.take(tmp_path / "other.tmp") is False


def test_of_two_processes_taking_the_last_spare_exactly_one_gets_it(tmp_path, clock):
    mine, theirs = (SpareFiles(tmp_path / "spare", clock=clock) for _ in range(2))
    mine.retire(_file(tmp_path / "done.json"))
    clock.now += REUSE_AFTER_SECONDS
    theirs._relist()  # it saw the spare in a listing too

    taken = [mine.take(tmp_path / "a.tmp"), theirs.take(tmp_path / "b.tmp")]

    assert sorted(taken) == [False, True]


def test_a_listing_keeps_the_spares_not_ready_yet_only_of_this_process(tmp_path, pool, clock):
    # Another process retired a file a moment before this one did. Both are
    # too young to reuse when this process lists the pool; once they ripen,
    # it takes its own first, and leaves the other's to a later listing (in
    # which every process sees it, in a random sample of the ready ones),
    # rather than every process racing for the same names in time order.
    pool.directory.mkdir()
    stamp = int(clock.now * 1000)
    theirs = pool.directory / f"{stamp - 1:013d}.999999.aaaaaaaaaaaa"
    _file(theirs, b"theirs")
    pool.retire(_file(tmp_path / "done.json", b"mine"))
    assert pool.take(tmp_path / "early.tmp") is False  # lists the pool: nothing ready
    clock.now += REUSE_AFTER_SECONDS

    assert pool.take(tmp_path / "new.tmp") is True

    assert (tmp_path / "new.tmp").read_bytes() == b"mine"
    assert theirs.exists()


def test_past_its_limit_the_pool_lets_files_go(tmp_path, clock):
    pool = SpareFiles(tmp_path / "spare", limit=2, clock=clock)
    for index in range(4):
        assert pool.retire(_file(tmp_path / f"{index}.json"))

    assert _spares(pool) == 2
    assert not list(tmp_path.glob("*.json"))


def test_a_write_into_a_reused_file_holds_exactly_the_new_data(tmp_path, monkeypatch):
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    pool = spares.spares_of(tmp_dir)
    monkeypatch.setattr(spares, "REUSE_AFTER_SECONDS", 0)
    old = _file(tmp_path / "done.json", b"x" * 5000)
    inode = os.stat(old).st_ino
    atomic.retire(old, tmp_dir=tmp_dir)

    written = atomic.write_temp(tmp_dir, b'{"short": true}')

    assert os.stat(written).st_ino == inode
    assert written.read_bytes() == b'{"short": true}'
    assert written.stat().st_mode & 0o777 == atomic.PRIVATE_FILE_MODE
    assert _spares(pool) == 0


def test_status_changes_reuse_the_files_of_earlier_statuses(tmp_path, monkeypatch):
    monkeypatch.setattr(spares, "REUSE_AFTER_SECONDS", 0)
    repository = JobRepository(tmp_path / "data", statuses=STATUSES)
    repository.create({"id": "01J0000000000000000000000A", "status": "pending"})
    first = os.stat(repository.path_for("01J0000000000000000000000A", "pending")).st_ino

    repository.update("01J0000000000000000000000A", lambda job: {**job, "status": "running"})
    repository.update("01J0000000000000000000000A", lambda job: {**job, "status": "completed"})

    # The pending file was retired by the first change and written again by the second.
    final = repository.path_for("01J0000000000000000000000A", "completed")
    assert os.stat(final).st_ino == first
    assert repository.get("01J0000000000000000000000A")["status"] == "completed"
    assert repository.quarantined() == 0


def test_a_reader_whose_file_is_reused_under_it_does_not_call_it_damaged(tmp_path, monkeypatch):
    repository = JobRepository(tmp_path / "data", statuses=STATUSES)
    repository.create({"id": "01J0000000000000000000000A", "status": "pending"})
    repository.create({"id": "01J0000000000000000000000B", "status": "pending"})
    path = repository.path_for("01J0000000000000000000000A", "pending")
    other = repository.path_for("01J0000000000000000000000B", "pending").read_bytes()
    real_read = atomic.read_bytes
    reads = []

    def racing_read(file):
        # The first read sees the file after it was retired and reused for
        # another job's document; by the second look the name is gone.
        if Path(file) == path and not reads:
            reads.append(file)
            path.unlink()
            return other
        return real_read(file)

    monkeypatch.setattr(atomic, "read_bytes", racing_read)

    assert repository._read(path) is None
    assert repository.quarantined() == 0


def test_a_file_that_stays_damaged_is_still_quarantined(tmp_path):
    repository = JobRepository(tmp_path / "data", statuses=STATUSES)
    repository.create({"id": "01J0000000000000000000000A", "status": "pending"})
    path = repository.path_for("01J0000000000000000000000A", "pending")
    path.write_bytes(b"{not json")

    assert repository._read(path) is None
    assert repository.quarantined() == 1


def test_concurrent_writers_never_share_a_spare(tmp_path, monkeypatch):
    monkeypatch.setattr(spares, "REUSE_AFTER_SECONDS", 0)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    for index in range(50):
        atomic.retire(_file(tmp_path / f"{index}.json"), tmp_dir=tmp_dir)
    written: list[Path] = []
    lock = threading.Lock()

    def write(number: int) -> None:
        for index in range(20):
            path = atomic.write_temp(tmp_dir, f"{number}-{index}".encode())
            with lock:
                written.append(path)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({os.stat(path).st_ino for path in written}) == 80
    assert sorted(path.read_bytes() for path in written) == sorted(
        f"{n}-{i}".encode() for n in range(4) for i in range(20)
    )
