"""Names unique to a process: its pid and tokens, without a system call per name."""

from __future__ import annotations

import os

from filestore import atomic, process_names
from tests.concurrency import made_in_threads, said_by_a_child


def test_tokens_are_distinct_across_threads():
    made = made_in_threads(process_names.token, threads=8, each=5000)

    tokens = [token for into in made for token in into]
    assert len(set(tokens)) == len(tokens) == 40_000
    assert all(int(token, 16) >= 0 for token in tokens)


def test_a_forked_child_has_its_own_pid_and_tokens():
    before = {process_names.token() for _ in range(100)}

    child, said = said_by_a_child(
        lambda: f"{process_names.pid()} " + " ".join(process_names.token() for _ in range(100))
    )
    pid, *tokens = said.split()

    assert int(pid) == child
    assert process_names.pid() == os.getpid()
    assert not before & set(tokens)
    assert not set(tokens) & {process_names.token() for _ in range(100)}


def test_a_temp_file_names_its_writer(tmp_path):
    written = atomic.write_temp(tmp_path, b"x")

    assert atomic.temp_writer_pid(written.name) == os.getpid()
