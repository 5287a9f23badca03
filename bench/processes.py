"""Starting the servers a measurement needs, and stopping every process they made.

Each server is started in its own session with its output in a log file of
the measurement's scratch directory. Stopping sends SIGTERM to the process
we started (never to its group: ``manage.py qcluster`` must see the signal
alone), waits, and then kills by pid whatever of its process tree is still
there, so a measurement leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Every process this run started or saw in a started process's tree, to
# check at the end that none is left.
SEEN: set[int] = set()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    log_path: Path
    port: int | None = None
    seen: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tree(self) -> list[int]:
        pids = process_tree(self.pid)
        self.seen.update(pids)
        SEEN.update(pids)
        return pids

    def rss_bytes(self) -> int:
        return sum(rss_bytes(pid) for pid in self.tree())

    def pss_bytes(self) -> int:
        return sum(pss_bytes(pid) for pid in self.tree())

    def memory_by_process(self) -> list[dict]:
        """RSS and PSS (MiB) of each process of the tree, with its parent, root first."""
        mib = 1024 * 1024
        return [
            {
                "pid": pid,
                "ppid": parent_of(pid),
                "rss_mib": round(rss_bytes(pid) / mib, 1),
                "pss_mib": round(pss_bytes(pid) / mib, 1),
            }
            for pid in self.tree()
        ]

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        self.tree()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        # Children of a stopped parent are re-parented; the pids seen earlier
        # (and any of their descendants still alive) are killed one by one.
        for pid in sorted(self.seen | set(descendants_of(self.seen))):
            if pid != self.pid and pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        deadline = time.monotonic() + 5
        while any(pid_alive(pid) for pid in self.seen) and time.monotonic() < deadline:
            time.sleep(0.05)


def start(
    name: str,
    command: list[str],
    *,
    env: dict[str, str],
    log_dir: Path,
    port: int | None = None,
    cwd: Path = PROJECT,
) -> Server:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    SEEN.add(process.pid)
    server = Server(name, process, log_path, port)
    server.seen.add(process.pid)
    return server


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[tuple[Server, ...]]:
    """Stop ``servers`` (last first) when the block ends, whatever happens."""
    try:
        yield servers
    finally:
        for server in reversed(servers):
            server.stop()


def http_status(url: str, *, method: str = "GET", body: bytes | None = None, timeout=5.0) -> int:
    """The status of one request; 0 when the server does not answer."""
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, urllib.error.URLError):
        return 0


def wait_http(server: Server, path: str, *, want=(200,), timeout: float = 60.0, every=0.05):
    """Poll ``path`` until it answers one of ``want``; return the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
        if http_status(server.url + path, timeout=2.0) in want:
            return time.monotonic() - started
        time.sleep(every)
    raise RuntimeError(f"{server.name} did not answer {path} in {timeout} s:\n{server.log_tail()}")


def wait_for(condition, *, timeout: float, every: float = 0.05, what: str = "condition") -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


# --- /proc ------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: parse after the last ")".
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants_of(pids: set[int]) -> list[int]:
    children = _children_map()
    found: list[int] = []
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive."""
    if not pid_alive(pid):
        return []
    return [pid, *descendants_of({pid})]


def children_of(pid: int) -> dict[int, str]:
    """The live children of ``pid`` (not their descendants), with their command lines."""
    found = {}
    for child in process_tree(pid)[1:]:
        if parent_of(child) != pid:
            continue
        try:
            with open(f"/proc/{child}/cmdline", "rb") as handle:
                found[child] = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return found


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return int(stat[stat.rfind(b")") + 2 :].split()[1])


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes ``pids`` have used so far."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages split between their sharers."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def leftovers() -> list[int]:
    """Processes this run started, saw or their descendants, still alive."""
    return sorted(pid for pid in SEEN | set(descendants_of(SEEN)) if pid_alive(pid))
