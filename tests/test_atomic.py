"""filestore.atomic's whole-file read: the same answers as Path.read_bytes."""

from __future__ import annotations

import os

import pytest

from filestore import atomic


@pytest.mark.parametrize(
    "size", [0, 1, 4096, atomic.READ_CHUNK - 1, atomic.READ_CHUNK, 3 * atomic.READ_CHUNK + 7]
)
def test_it_reads_a_whole_file_of_any_size(tmp_path, size):
    path = tmp_path / "file"
    data = os.urandom(size)
    path.write_bytes(data)

    assert atomic.read_bytes(path) == data
    assert atomic.read_bytes(os.fspath(path)) == data


def test_it_raises_what_open_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic.read_bytes(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        atomic.read_bytes(tmp_path)


def test_it_closes_what_it_opens(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"{}")
    before = len(os.listdir("/proc/self/fd"))

    for _ in range(100):
        atomic.read_bytes(path)
    with pytest.raises(IsADirectoryError):
        atomic.read_bytes(tmp_path)

    assert len(os.listdir("/proc/self/fd")) == before


def test_a_named_pipe_reads_as_empty_instead_of_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    assert atomic.read_bytes(fifo) == b""
