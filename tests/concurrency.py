"""Running test code in several threads at once, or in a forked child."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


def made_in_threads(make: Callable[[], str], *, threads: int, each: int) -> list[list[str]]:
    """What ``make()`` returned, ``each`` times in each of ``threads`` threads started together."""
    made: list[list[str]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def burst(out: list[str]) -> None:
        start.wait()
        out.extend(make() for _ in range(each))

    running = [threading.Thread(target=burst, args=(out,)) for out in made]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return made


def said_by_a_child(say: Callable[[], str]) -> tuple[int, str]:
    """Fork; the child sends back what ``say()`` returns and exits. Returns its pid and that."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.write(write_end, say().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        said = pipe.read().decode()
    os.waitpid(pid, 0)
    return pid, said
