"""The executor of the web server's create batches (``jobsite/hot_threads.py``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jobsite.hot_threads import HotThreads

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def threads():
    executor = HotThreads(3, name="test")
    yield executor
    executor.shutdown()


def _thread_name() -> str:
    return threading.current_thread().name


def test_calls_one_at_a_time_all_run_on_one_thread(threads: HotThreads):
    names = {threads.submit(_thread_name).result(5) for _ in range(50)}

    assert names == {"test_0"}


def test_calls_at_the_same_time_get_threads_of_their_own(threads: HotThreads):
    started = threading.Barrier(3)

    def meet() -> str:
        started.wait(5)  # all three run at once, or this times out
        return _thread_name()

    together = [threads.submit(meet) for _ in range(3)]

    assert sorted(future.result(5) for future in together) == ["test_0", "test_1", "test_2"]


def test_the_thread_that_went_idle_last_takes_the_next_call(threads: HotThreads):
    gate = [threading.Event() for _ in range(3)]

    def hold(index: int) -> str:
        gate[index].wait(5)
        return _thread_name()

    futures = [threads.submit(hold, index) for index in range(3)]
    for index in (0, 2, 1):  # test_1 goes idle last
        gate[index].set()
        futures[index].result(5)

    assert threads.submit(_thread_name).result(5) == futures[1].result()


def test_a_call_beyond_its_threads_is_refused_not_queued(threads: HotThreads):
    release = threading.Event()
    busy = [threads.submit(release.wait, 5) for _ in range(3)]

    with pytest.raises(RuntimeError, match="all 3 threads of test are busy"):
        threads.submit(_thread_name)
    release.set()
    assert all(future.result(5) for future in busy)


def test_errors_reach_the_caller_and_the_thread_serves_on(threads: HotThreads):
    def fail() -> None:
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        threads.submit(fail).result(5)
    assert threads.submit(_thread_name).result(5) == "test_0"


def test_a_thread_is_idle_again_before_its_caller_hears_the_result():
    threads = HotThreads(1, name="one")

    async def chain() -> list[str]:
        loop = asyncio.get_running_loop()
        names = []
        for _ in range(20):
            # Submitted the moment the previous call's result arrives: with
            # one thread, it would be refused as busy were it not idle yet.
            names.append(await loop.run_in_executor(threads, _thread_name))
        return names

    try:
        assert asyncio.run(chain()) == ["one_0"] * 20
    finally:
        threads.shutdown()


def test_shutdown_stops_the_threads_and_refuses_new_calls():
    threads = HotThreads(2, name="stop")
    threads.submit(_thread_name).result(5)
    workers = list(threads._threads)

    threads.shutdown()

    assert not any(thread.is_alive() for thread in workers)
    with pytest.raises(RuntimeError, match="after shutdown"):
        threads.submit(_thread_name)


def test_size_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        HotThreads(0, name="none")


def test_the_interpreter_exits_after_finishing_a_running_call(tmp_path):
    marker = tmp_path / "finished"
    script = f"""
import threading, time
from jobsite.hot_threads import HotThreads
threads = HotThreads(2, name="exit")
threads.submit(lambda: None).result()  # one idle thread
started = threading.Event()
def slow():
    started.set()
    time.sleep(0.3)
    open({str(marker)!r}, "w").write("done")
threads.submit(slow)
started.wait(5)
"""  # the main thread ends here, with a call running and a thread idle
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=str(PROJECT), timeout=20, capture_output=True
    )

    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "done"
