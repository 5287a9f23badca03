"""A real ``redis-server`` for the tests: loopback only, its own port and data directory.

Import the ``redis_server`` fixture where it is needed; it starts one
server per session (per place it is imported), and skips the tests that
use it when ``redis-server`` is not installed (``apt-get install
redis-server``; CI installs it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

START_SECONDS = 10.0


class RedisServer:
    """One ``redis-server`` process that a test may stop and start again."""

    def __init__(self, executable: str, data_dir: Path) -> None:
        self.executable = executable
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        # Append-only file on, snapshots off: a restart finds the data of
        # before, as in production, without fork()ing to write snapshots.
        self._process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                # BusyLoadingError too: the server is still reading its data.
                if self._process.poll() is not None:
                    code = self._process.returncode
                    raise RuntimeError(f"redis-server exited with {code}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server not ready within {START_SECONDS} s") from None
                time.sleep(0.01)
            finally:
                client.close()

    @property
    def running(self) -> bool:
        return self._process is not None

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        self._process.wait(timeout=START_SECONDS)
        self._process = None

    def flush(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            client.flushall()
        finally:
            client.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="redis-test-") as data_dir:
        server = RedisServer(executable, Path(data_dir))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The server's URL, with nothing stored: each test starts from an empty Redis."""
    redis_server.flush()
    return redis_server.url
