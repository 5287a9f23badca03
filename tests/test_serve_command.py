"""``manage.py serve`` runs the web server and the worker as its children: it
refuses at once an address it cannot listen on, says where it runs once it
does, and if either child dies, it stops the other and fails; a new
``serve`` on the same data finishes the jobs the old one had accepted, once."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys

import pytest

from bench.processes import children_of, pid_alive
from tests.django_process import PROJECT, environment, manage
from tests.system import System, free_port, wait_for


def _child(system: System, role: str) -> int:
    assert system.process is not None
    marker = "qcluster" if role == "worker" else "granian"
    found = [pid for pid, command in children_of(system.process.pid).items() if marker in command]
    assert len(found) == 1, children_of(system.process.pid)
    return found[0]


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
        wait_for(lambda: not pid_alive(other_pid), timeout=20, message=f"the {other} to stop")
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


def test_a_port_in_use_is_refused_with_a_clear_message_before_anything_starts(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = manage("serve", "--port", str(port), env=environment(tmp_path / "data"), timeout=30)
    assert done.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use by another program" in done.stderr
    assert f"PORT={port + 1} make run" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "is running at" not in done.stdout


def test_an_address_not_of_this_machine_is_refused(tmp_path):
    host = "192.0.2.1"  # TEST-NET-1: never a local address
    done = manage(
        "serve",
        "--host",
        host,
        "--port",
        str(free_port()),
        env=environment(tmp_path / "data"),
        timeout=30,
    )
    assert done.returncode != 0
    assert "192.0.2.1 is not an address of this machine" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.slow
def test_it_says_where_it_runs_once_the_web_server_accepts_connections(tmp_path):
    env = environment(tmp_path / "data")
    migrated = manage("migrate", "--noinput", "-v0", env=env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "is running at" in line:
                break
        assert f"Jobs is running at http://127.0.0.1:{port}/" in lines[-1], "".join(lines)
        # Said only once it is true.
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
