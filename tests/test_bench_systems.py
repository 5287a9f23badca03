"""The benchmark's scratch directories (``bench/systems.py``)."""

from __future__ import annotations

import array
import fcntl
import os

from bench import systems


def _flags(path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, systems._FS_IOC_GETFLAGS, flags, True)
        return flags[0]
    finally:
        os.close(fd)


def test_spread_directories_marks_a_top_directory_where_supported(tmp_path):
    marked = systems.spread_directories(tmp_path)
    try:
        _flags(tmp_path)
        supported = True
    except OSError:
        supported = False  # a file system without attributes (tmpfs): nothing to mark
    assert marked == supported
    if marked:
        assert _flags(tmp_path) & systems._FS_TOPDIR_FL
        assert systems.spread_directories(tmp_path)  # marking again changes nothing


def test_spread_directories_of_a_missing_directory_is_false(tmp_path):
    assert systems.spread_directories(tmp_path / "missing") is False


def test_scratch_directories_are_made_under_a_spread_root(tmp_path, monkeypatch):
    monkeypatch.setattr(systems, "SCRATCH_ROOT", tmp_path / "scratch")
    scratch = systems.Scratch.make("t")
    assert scratch.root.parent == tmp_path / "scratch"
    if systems.spread_directories(tmp_path):
        assert _flags(tmp_path / "scratch") & systems._FS_TOPDIR_FL
