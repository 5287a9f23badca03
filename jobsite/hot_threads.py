"""An executor that hands each call to the thread that went idle last.

:class:`concurrent.futures.ThreadPoolExecutor` wakes its threads in turn:
a queue of calls is taken by the thread that has waited longest, so a
steady stream of calls, one at a time, visits every thread of the pool,
each with its caches gone cold. The web server's batches of creates are
such a stream (under a closed loop of clients, one batch per process at
a time; see :mod:`jobsite.rsgi`): they ran on ten different threads.
:class:`HotThreads` keeps its idle threads on a stack, so the same thread
takes the next call while it is free, and another starts only for calls
that run at the same time. On the two-core machine of the README, creates
alone at 16 connections answered 15 % more a second with it at the
median, at 7 % less CPU per create (README, "Serving").

It holds at most ``size`` threads and never queues: the caller admits no
more calls at once than that (the gateway's ``CREATE_BATCHES``), and a
call beyond it is refused with ``RuntimeError``. As the pool's threads,
they are not daemons: when the interpreter exits, a call running then is
finished first (a batch of creates is answered), and the idle threads
are told to stop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from queue import SimpleQueue
from typing import Any


class HotThreads(Executor):
    """Up to ``size`` threads; a call goes to the one idle for the shortest time."""

    def __init__(self, size: int, *, name: str) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size!r}")
        self.size = size
        self.name = name
        self._lock = threading.Lock()
        # The idle threads' inboxes, the one that went idle last at the end.
        self._idle: list[SimpleQueue] = []
        self._threads: list[threading.Thread] = []
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot run calls after shutdown")
            if self._idle:
                inbox = self._idle.pop()
            elif len(self._threads) < self.size:
                inbox = self._start_thread()
            else:
                raise RuntimeError(f"all {self.size} threads of {self.name} are busy")
        inbox.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            inboxes, self._idle = self._idle, []
            threads = list(self._threads)
        for inbox in inboxes:
            inbox.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _start_thread(self) -> SimpleQueue:
        inbox: SimpleQueue = SimpleQueue()
        if not self._threads:
            # Before the interpreter joins the threads that are not daemons
            # (as concurrent.futures does for its pools): idle threads stop,
            # busy ones once their call is done.
            threading._register_atexit(self._stop_at_exit)
        thread = threading.Thread(
            target=self._work, args=(inbox,), name=f"{self.name}_{len(self._threads)}"
        )
        self._threads.append(thread)
        thread.start()
        return inbox

    def _stop_at_exit(self) -> None:
        self.shutdown(wait=False)

    def _work(self, inbox: SimpleQueue) -> None:
        while True:
            item = inbox.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            del item
            failed: BaseException | None = None
            result = None
            running = future.set_running_or_notify_cancel()
            if running:
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    failed = exc
            del fn, args, kwargs
            # Idle again before the caller learns the call is done: the
            # next call it makes then finds this thread, not a new one.
            with self._lock:
                stop = self._shutdown
                if not stop:
                    self._idle.append(inbox)
            if running:
                if failed is None:
                    future.set_result(result)
                else:
                    future.set_exception(failed)
            del future, result, failed  # nothing of the call outlives it
            if stop:
                return
