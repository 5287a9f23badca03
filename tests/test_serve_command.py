"""``manage.py serve`` runs the web server and the worker as its children: if
either dies, it stops the other and fails, and a new ``serve`` on the same
data finishes the jobs the old one had accepted, once."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.system import System, wait_for


def _children(pid: int) -> dict[int, str]:
    """The direct children of ``pid``, with their command lines."""
    children = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except FileNotFoundError:
                continue
            children[int(child)] = command.decode(errors="replace")
    return children


def _child(system: System, role: str) -> int:
    assert system.process is not None
    marker = "qcluster" if role == "worker" else "granian"
    found = [pid for pid, command in _children(system.process.pid).items() if marker in command]
    assert len(found) == 1, _children(system.process.pid)
    return found[0]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie waiting for its parent to reap it is gone too.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state == "Z"


@pytest.mark.slow
@pytest.mark.parametrize(("killed", "other"), [("worker", "web"), ("web", "worker")])
def test_a_killed_child_stops_the_other_and_a_new_serve_finishes_the_jobs(tmp_path, killed, other):
    data = tmp_path / "data"
    first = System(data).start()
    try:
        status, job = first.request("POST", "/api/jobs", {"delay_seconds": 5})
        assert status == 202
        other_pid = _child(first, other)
        os.kill(_child(first, killed), signal.SIGKILL)

        assert first.process is not None
        try:
            code = first.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve went on without its {killed}: {first.log.read_text()[-2000:]}")
        assert code != 0
        assert f"The {killed} process exited (-9); stopping the rest." in first.log.read_text()
        wait_for(lambda: _gone(other_pid), timeout=20, message=f"the {other} to stop")
    finally:
        first.stop()

    second = System(data).start()
    try:

        def finished():
            status, body = second.get(f"/api/jobs/{job['id']}")
            assert status == 200
            return body if body["status"] not in ("pending", "running") else None

        done = wait_for(finished, timeout=60, message="the accepted job to finish")
        assert done["status"] == "completed"
        assert done["attempts"] == 1
        assert [listed["id"] for listed in second.jobs()] == [job["id"]]
    finally:
        second.stop()
