"""A real ``manage.py qcluster`` in a subprocess, for end-to-end tests.

The cluster runs in its own process group, so a test can look at every
process it spawned (through ``/proc``) and kill them all at once, the way a
machine losing power or an OOM killer would::

    cluster = WorkerCluster(data_dir, log_path, env={"JOBS_WORKERS": "2"})
    cluster.start()
    try:
        ...
        cluster.stop()        # SIGTERM to the main process only, then wait
    finally:
        cluster.kill()        # SIGKILL to the whole group; a no-op once stopped

Nothing here sleeps to "wait a bit": :func:`wait_for` polls a condition
until a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

BASE_DIR = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.05

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout: float, what: str) -> T:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_SECONDS)


@dataclass(frozen=True)
class Census:
    """The processes of a cluster's process group and their threads, from ``/proc``."""

    pids: tuple[int, ...]
    threads: int

    @property
    def processes(self) -> int:
        return len(self.pids)


def process_group_census(pgid: int) -> Census:
    pids = []
    threads = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            status = Path(f"/proc/{entry}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it exited while we looked
        # Fields after the command name, which may itself hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        state, group = fields[0], int(fields[2])
        if group != pgid or state == "Z":
            continue
        pids.append(int(entry))
        for line in status.splitlines():
            if line.startswith("Threads:"):
                threads += int(line.split()[1])
    return Census(tuple(sorted(pids)), threads)


class WorkerCluster:
    """One ``manage.py qcluster`` process (and its children) on ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        env: Mapping[str, str],
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.env = dict(env)
        # Runs the command inside another (e.g. ``unshare`` for a host name of its own).
        self.command_prefix = list(command_prefix)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "start the cluster first"
        return self.process.pid

    def start(self, *, timeout: float = 30) -> WorkerCluster:
        """Start the cluster and wait until its first heartbeat (its workers are up)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.command_prefix, sys.executable, "manage.py", "qcluster"],
                cwd=BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: see census() and kill()
            )
        wait_for(self._started, timeout=timeout, what=f"the cluster to start; log:\n{self.log()}")
        return self

    def _started(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"the cluster exited with {self.process.returncode}:\n{self.log()}"
            )
        return self.heartbeat_path().exists()

    def heartbeat_path(self) -> Path:
        return self.data_dir / "worker" / f"{socket.gethostname()}-{self.pid}.json"

    def census(self) -> Census:
        return process_group_census(self.pid)

    def stop(self, *, timeout: float = 30) -> int:
        """SIGTERM to the main process only (as a service manager would); wait for its exit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the cluster did not stop within {timeout:g} s of SIGTERM:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL to every process of the group, and wait until none is left."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):  # all gone already
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()
        wait_for(lambda: not self.census().pids, timeout=10, what="the cluster's processes to die")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def cluster_env(
    data_dir: Path, *, secret_key: str, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a cluster on ``data_dir``: short delays, no Unsplash key unless given."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("JOBS_", "UNSPLASH_", "DJANGO_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "jobsite.settings",
            "DJANGO_SECRET_KEY": secret_key,  # task messages are signed with it
            "JOBS_DATA_DIR": str(data_dir),
            "JOBS_MIN_DELAY": "1",
            "JOBS_MAX_DELAY": "5",
            "JOBS_DELAY_STEP": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides or {})
    return env
