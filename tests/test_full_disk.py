"""A real, small file system filling up under the creates: clear answers, nothing half-written.

The data directory is a tmpfs of a few hundred KiB mounted for the test
(root only; skipped where mounting is not allowed). Creates go on until the
disk is full; every answer is a ``202`` or a ``503`` problem, never a
``500``; every job stored is readable; once the disk has room again the
same keys get their jobs and nothing is lost.

The metrics' memory-mapped files on a full disk: no process is killed
(SIGBUS), the values that find no room show up once there is room; and the
whole system (``manage.py serve``) on a full disk keeps answering reads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

from jobs import store
from tests.django_process import environment, run_python
from tests.system import System, parse_response, raw_exchange

# Django's test client, then the web server's gateway (tests/api_clients.py).
pytestmark = pytest.mark.both_servers


def _mount_small_fs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
    )
    return done.returncode == 0


@pytest.fixture
def small_fs(tmp_path):
    """Mounts a tmpfs of the given size (``small_fs("256k")``); unmounted after the test."""
    mounted = []

    def mount(size: str) -> Path:
        mount_point = tmp_path / f"small{len(mounted)}"
        if not _mount_small_fs(mount_point, size):
            pytest.skip("mounting a small tmpfs needs root and a system that allows it")
        mounted.append(mount_point)
        return mount_point

    yield mount
    for mount_point in mounted:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def small_data_dir(tmp_path, settings):
    mount_point = tmp_path / "small"
    if not _mount_small_fs(mount_point, "192k"):
        pytest.skip("mounting a small tmpfs needs root and a system that allows it")
    try:
        root = mount_point / "data"
        (root / "tmp").mkdir(parents=True)
        settings.JOBS_DATA_DIR = root
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _create(client, key: str):
    return client.post(
        "/api/jobs",
        data=json.dumps({"delay_seconds": 30}),
        content_type="application/json",
        headers={"Idempotency-Key": key},
    )


def test_a_full_disk_answers_503_and_loses_nothing_once_it_has_room(client, small_data_dir):
    mount_point = small_data_dir
    answers: dict[str, object] = {}
    for _ in range(2000):
        key = uuid.uuid4().hex
        answer = _create(client, key)
        answers[key] = answer
        assert answer.status_code in (202, 503), (answer.status_code, answer.content[:300])
        if answer.status_code == 503:
            break
    else:
        pytest.fail("the small file system never filled up")
    refused = [key for key, answer in answers.items() if answer.status_code == 503]
    accepted = {
        key: answer.json()["id"] for key, answer in answers.items() if answer.status_code == 202
    }
    problem = answers[refused[0]]
    assert problem["Content-Type"] == "application/problem+json"
    assert problem.has_header("Retry-After")
    assert "storage" in problem.json()["detail"].lower()
    # Nothing half-written: every job on disk reads back whole.
    stored = [entry.id for entry in store.repository().entries()]
    assert all(store.repository().get(job_id).id == job_id for job_id in stored)
    assert set(accepted.values()) <= set(stored)
    # A finished request is replayed even on the full disk.
    first_key = next(iter(accepted))
    replay = _create(client, first_key)
    assert replay.status_code == 202 and replay.json()["id"] == accepted[first_key]

    subprocess.run(["mount", "-o", "remount,size=4m", str(mount_point)], check=True)

    # The refused create, retried with its key, gets one job now.
    retried = _create(client, refused[0])
    assert retried.status_code in (202, 409), retried.content[:300]
    jobs_now = {entry.id for entry in store.repository().entries()}
    assert set(accepted.values()) <= jobs_now
    assert _create(client, uuid.uuid4().hex).status_code == 202


# --- the metrics' files on a full disk ------------------------------------------------

# Run in a process of its own: on a full disk, a write through the memory map
# of a value file that has no block behind it kills the process (SIGBUS).
_FILL = """
import errno, os
def fill(directory):
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
def make_room(directory):
    os.unlink(os.path.join(directory, "filler"))
"""


def _run_metrics_script(tmp_path: Path, metrics_dir: Path, script: str):
    return run_python(
        "-c",
        _FILL + textwrap.dedent(script),
        env=environment(
            tmp_path / "data", JOBS_METRICS_DIR=str(metrics_dir), PYTHONFAULTHANDLER="1"
        ),
    )


def _assert_lived(done: subprocess.CompletedProcess) -> None:
    assert done.returncode != -signal.SIGBUS, "killed by SIGBUS: " + done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]


def test_metrics_that_find_no_room_on_a_full_disk_wait_in_memory(tmp_path, small_fs):
    metrics_dir = small_fs("256k")
    done = _run_metrics_script(
        tmp_path,
        metrics_dir,
        f"""
        import time, django
        django.setup()
        from jobs import metrics
        metrics.http_request("before", 200, 0.01)
        fill({str(metrics_dir)!r})
        # 300 new routes, 15 values each: the files must grow on the full disk.
        for n in range(300):
            metrics.http_request(f"route-{{n}}", 200, 0.01)
            metrics.http_request("before", 200, 0.01)
        print("FULL", metrics.exposition().decode())
        make_room({str(metrics_dir)!r})
        time.sleep(1.2)  # one try per second while there is no room
        metrics.http_request("after", 200, 0.01)
        print("ROOM", metrics.exposition().decode())
        """,
    )

    _assert_lived(done)
    full, _, room = done.stdout.partition("ROOM")
    assert 'route="before",status="200"} 301.0' in full
    assert "missing from /metrics" in done.stderr
    # Once there is room, every value kept in memory is in the file.
    for n in range(300):
        assert f'jobs_http_requests_total{{route="route-{n}",status="200"}} 1.0' in room
    assert 'route="before",status="200"} 301.0' in room
    assert 'route="after",status="200"} 1.0' in room


def test_a_process_starting_on_a_full_disk_runs_and_writes_its_metrics_once_there_is_room(
    tmp_path, small_fs
):
    metrics_dir = small_fs("256k")
    (metrics_dir / "lock").touch()
    done = _run_metrics_script(
        tmp_path,
        metrics_dir,
        f"""
        import glob, time, django
        fill({str(metrics_dir)!r})
        django.setup()
        from jobs import metrics  # makes its value files: no room for them
        metrics.job_created()
        print("FULL", sorted(glob.glob({str(metrics_dir)!r} + "/*.db")))
        make_room({str(metrics_dir)!r})
        time.sleep(1.2)
        metrics.job_created()
        print("ROOM", metrics.exposition().decode())
        """,
    )

    _assert_lived(done)
    full, _, room = done.stdout.partition("ROOM")
    assert "FULL []" in full  # no half-made file for a scrape to trip on
    assert "jobs_created_total 2.0" in room
    assert 'jobs_finished_total{status="failed"} 0.0' in room  # made at import, kept


@pytest.mark.slow
def test_the_system_answers_reads_on_a_full_disk_and_stays_up(small_fs):
    mount_point = small_fs("2m")
    # The data directory, the metric files and the server's log all on the small disk.
    system = System(
        mount_point / "data",
        env={
            "JOBS_THROTTLE_CREATE_RATE": "0",
            "JOBS_MAX_DUE_PER_SECOND": "0",
            "JOBS_MAX_LATENESS": "0",
            "JOBS_MAX_DELAY": "3600",
            "PYTHONFAULTHANDLER": "1",
        },
    ).start()
    try:
        accepted = []
        for _ in range(2000):
            body = json.dumps({"delay_seconds": 3000}).encode()
            status, _, content = _exchange(
                system,
                b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nIdempotency-Key: %s\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (uuid.uuid4().hex.encode(), len(body), body),
            )
            assert status in (202, 503), content[:300]
            if status == 503:
                break
            accepted.append(json.loads(content)["id"])
        else:
            pytest.fail("the small file system never filled up")
        assert accepted

        # Routes this server has not answered yet (new metric values to record), each
        # asked more than once so that every web process meets them on the full disk.
        for _ in range(4):
            for job_id in accepted[:3]:
                status, _, content = _get(system, f"/api/jobs/{job_id}")
                assert status == 200 and json.loads(content)["id"] == job_id
            assert _get(system, "/api/jobs?limit=5")[0] == 200
            assert _get(system, "/api/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV")[0] == 404
            assert _get(system, "/api/schema")[0] == 200
            assert _get(system, "/")[0] == 200
            assert _get(system, "/static/no-such-file.css")[0] == 404
        assert system.process.poll() is None, "the server stopped"
    finally:
        system.stop()


def _exchange(system: System, request: bytes) -> tuple[int, dict, bytes]:
    answer = raw_exchange(system.port, request)
    assert answer, f"connection closed with no answer to {request[:60]!r}"
    return parse_response(answer)


def _get(system: System, path: str) -> tuple[int, dict, bytes]:
    return _exchange(
        system, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    )
