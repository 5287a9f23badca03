"""Names unique to a process: its pid and tokens, without a system call per name."""

from __future__ import annotations

import os
import threading

from filestore import atomic, process_names


def test_tokens_are_distinct_across_threads():
    made: list[list[str]] = [[] for _ in range(8)]

    def name_many(into: list[str]) -> None:
        for _ in range(5000):
            into.append(process_names.token())

    threads = [threading.Thread(target=name_many, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    tokens = [token for into in made for token in into]
    assert len(set(tokens)) == len(tokens) == 40_000
    assert all(int(token, 16) >= 0 for token in tokens)


def test_a_forked_child_has_its_own_pid_and_tokens():
    before = {process_names.token() for _ in range(100)}
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        said = f"{process_names.pid()} " + " ".join(process_names.token() for _ in range(100))
        os.write(write, said.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read, "rb") as pipe:
        pid, *tokens = pipe.read().decode().split()

    assert int(pid) == child
    assert process_names.pid() == os.getpid()
    assert not before & set(tokens)
    assert not set(tokens) & {process_names.token() for _ in range(100)}


def test_a_temp_file_names_its_writer(tmp_path):
    written = atomic.write_temp(tmp_path, b"x")

    assert atomic.temp_writer_pid(written.name) == os.getpid()
