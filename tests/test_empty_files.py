"""Empty files made as links to a shared empty file (filestore.empty_files)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from filestore import empty_files
from filestore.empty_files import IDLE_SECONDS, SharedEmptyFile
from tests.clocks import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def shared(tmp_path: Path, clock: FakeClock) -> SharedEmptyFile:
    (tmp_path / "out").mkdir()
    return SharedEmptyFile(str(tmp_path / "empty"), clock=clock)


def _shared_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "empty").iterdir())


def test_every_empty_file_of_a_process_is_a_name_of_one_file(shared, tmp_path):
    for name in ("a", "b", "c"):
        shared.link(str(tmp_path / "out" / name))

    [file] = _shared_files(tmp_path)
    assert file.stat().st_nlink == 4
    assert {(tmp_path / "out" / name).stat().st_ino for name in "abc"} == {file.stat().st_ino}
    assert all((tmp_path / "out" / name).read_bytes() == b"" for name in "abc")


def test_a_taken_name_is_refused(shared, tmp_path):
    (tmp_path / "out" / "a").write_bytes(b"mine")

    with pytest.raises(FileExistsError):
        shared.link(str(tmp_path / "out" / "a"))

    assert (tmp_path / "out" / "a").read_bytes() == b"mine"


def test_a_missing_directory_is_reported_as_such(shared, tmp_path):
    with pytest.raises(FileNotFoundError):
        shared.link(str(tmp_path / "nowhere" / "a"))

    shared.link(str(tmp_path / "out" / "a"))
    assert len(_shared_files(tmp_path)) == 1  # the shared file was not taken for the missing one


def test_a_shared_file_with_all_its_names_taken_is_replaced(shared, tmp_path, monkeypatch):
    shared.link(str(tmp_path / "out" / "a"))
    [first] = _shared_files(tmp_path)
    real_link = os.link

    def capped(source, target):
        if source == str(first):
            raise OSError(errno.EMLINK, "Too many links")
        real_link(source, target)

    monkeypatch.setattr(empty_files.os, "link", capped)

    shared.link(str(tmp_path / "out" / "b"))
    shared.link(str(tmp_path / "out" / "c"))

    [second] = [path for path in _shared_files(tmp_path) if path != first]
    assert (tmp_path / "out" / "a").stat().st_ino == first.stat().st_ino
    assert {(tmp_path / "out" / n).stat().st_ino for n in "bc"} == {second.stat().st_ino}


def test_a_shared_file_removed_under_its_process_is_made_again(shared, tmp_path):
    shared.link(str(tmp_path / "out" / "a"))
    [first] = _shared_files(tmp_path)
    first.unlink()

    shared.link(str(tmp_path / "out" / "b"))

    [second] = _shared_files(tmp_path)
    assert (tmp_path / "out" / "b").stat().st_ino == second.stat().st_ino
    assert (tmp_path / "out" / "a").read_bytes() == b""  # still a complete empty file


def test_making_a_shared_file_removes_the_idle_ones_nothing_links_to(tmp_path):
    directory = tmp_path / "empty"
    directory.mkdir()
    (tmp_path / "out").mkdir()
    for name in ("unused", "linked"):
        (directory / name).touch()
    os.link(directory / "linked", tmp_path / "out" / "message")
    clock = FakeClock()  # the real time: nothing has been idle long enough yet

    SharedEmptyFile(str(directory), clock=clock).link(str(tmp_path / "out" / "one"))
    assert {"unused", "linked"} < {path.name for path in directory.iterdir()}

    clock.advance(IDLE_SECONDS + 2)
    SharedEmptyFile(str(directory), clock=clock).link(str(tmp_path / "out" / "two"))

    names = {path.name for path in directory.iterdir()}
    assert "unused" not in names
    assert "linked" in names  # a message still leads to it
    assert len(names) == 3  # and the two processes' shared files, each linked to


def test_the_queues_of_a_process_on_one_directory_share_one_file(tmp_path):
    first = empty_files.shared_empty_file(tmp_path / "empty")

    assert empty_files.shared_empty_file(str(tmp_path / "empty")) is first
    assert empty_files.shared_empty_file(tmp_path / "other") is not first
