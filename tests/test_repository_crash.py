"""A crash at any step of a write leaves every job in one readable, correct state.

Each scenario first runs the write cleanly to enumerate every step it takes
(``write``, ``fsync``, ``rename``, ``link``, ``unlink``, ``fsync_dir``), then
replays it once per step on a fresh store, stopping right before that step:

- "dies": the writer is a forked process that exits on the spot, leaving
  whatever it had on disk (temp files included), as a killed process does;
- "fails": the step raises ``OSError`` in this process, as a full disk does.

Before the commit step (the ``link`` of a create, the ``rename`` of an
update) the store must show the old state, after it the new one, and
``recover()`` must then leave exactly one file per job and no temp files.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from filestore import atomic
from filestore.ids import new_id
from filestore.repository import STALE_TEMP_SECONDS, JobNotFound, JobRepository
from jobs.model import STATUSES

CRASHED, FINISHED, RAISED = 17, 18, 19


@pytest.fixture(autouse=True)
def _reset_hooks():
    yield
    atomic.hooks.reset()


def _steps_of(action: Callable[[], dict]) -> tuple[list[tuple[str, str]], dict]:
    """Every step a clean run of ``action`` takes, and what it returns."""
    seen: list[tuple[str, str]] = []
    atomic.hooks.before = lambda step, path: seen.append((step, path))
    try:
        result = action()
    finally:
        atomic.hooks.reset()
    return seen, result


def _stop_before(occurrence: int, action: Callable[[], object], mode: str) -> None:
    """Run ``action`` and stop it right before its ``occurrence``-th step."""
    count = 0

    def hook(step: str, path: str) -> None:
        nonlocal count
        count += 1
        if count - 1 != occurrence:
            return
        if mode == "dies":
            os._exit(CRASHED)
        raise OSError(errno.EIO, f"injected failure before {step} of {path}")

    if mode == "fails":
        atomic.hooks.before = hook
        try:
            with pytest.raises(OSError, match="injected failure"):
                action()
        finally:
            atomic.hooks.reset()
        return

    pid = os.fork()
    if pid == 0:  # the writer that gets killed
        code = RAISED
        try:
            atomic.hooks.before = hook
            action()
            code = FINISHED
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == CRASHED, "the writer did not stop at the step"


def _names_of(repo: JobRepository, job_id: str) -> list[str]:
    leaf = repo.leaf_dir(job_id)
    if not leaf.is_dir():
        return []
    return sorted(name for name in os.listdir(leaf) if name.startswith(job_id))


def _temp_files(repo: JobRepository) -> list[Path]:
    return sorted(repo.tmp_dir.iterdir())


def _assert_store_shows(repo: JobRepository, job_id: str, expected: dict | None) -> None:
    """Every reader agrees on the job: ``expected``, or no job at all."""
    documents, more = repo.list(limit=10)
    counts = repo.counts()
    if expected is None:
        with pytest.raises(JobNotFound):
            repo.get(job_id)
        assert documents == []
        assert sum(counts.values()) == 0
        return
    assert repo.get(job_id) == expected
    assert (documents, more) == ([expected], False)
    assert counts == {**dict.fromkeys(counts, 0), expected["status"]: 1}
    for status in counts:
        filtered, _ = repo.list(statuses=[status], limit=10)
        assert filtered == ([expected] if status == expected["status"] else [])


def _check_every_crash_point(
    tmp_path: Path,
    mode: str,
    prepare: Callable[[JobRepository], dict | None],
    act: Callable[[JobRepository], dict],
    commit_step: str,
) -> list[str]:
    """Replay ``act`` stopped at each of its steps; return the steps covered."""
    clean = JobRepository(tmp_path / "clean", statuses=STATUSES)
    clean.setup()
    prepare(clean)
    steps, new = _steps_of(lambda: act(clean))
    assert clean.get(new["id"]) == new
    commit = next(i for i, (step, _) in enumerate(steps) if step == commit_step)

    for occurrence, (step, path) in enumerate(steps):
        where = f"stopped before step {occurrence} ({step} {path})"
        repo = JobRepository(tmp_path / f"{mode}-{occurrence}", statuses=STATUSES)
        repo.setup()
        old = prepare(repo)
        job_id = new["id"]

        _stop_before(occurrence, lambda repo=repo: act(repo), mode)

        after = JobRepository(repo.root, statuses=STATUSES)  # a fresh process's view
        expected = new if occurrence > commit else old
        try:
            _assert_store_shows(after, job_id, expected)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from exc
        if mode == "dies" and step in ("write", "fsync", "rename", "link"):
            assert _temp_files(after), f"{where}: a killed writer leaves its temp file"
        if mode == "fails":
            assert _temp_files(after) == [], f"{where}: a failed write removes its temp file"

        after.recover()

        assert _temp_files(after) == [], where
        assert list(after.quarantine_dir.iterdir()) == [], where
        if expected is None:
            assert _names_of(after, job_id) == [], where
        else:
            assert _names_of(after, job_id) == [f"{job_id}_{expected['status']}.json"], where
        _assert_store_shows(after, job_id, expected)
        # The store goes on working: the next change of the job lands.
        if expected is not None:
            changed = after.update(job_id, lambda job: {**job, "status": "cancelled"})
            assert changed["revision"] == expected["revision"] + 1
            assert _names_of(after, job_id) == [f"{job_id}_cancelled.json"], where
    return [step for step, _ in steps]


_JOB_ID = new_id()


def _pending() -> dict:
    return {"id": _JOB_ID, "status": "pending", "attempts": 0, "result": None}


@pytest.mark.parametrize("mode", ["dies", "fails"])
def test_it_survives_a_crash_at_every_step_of_a_create(tmp_path, mode):
    steps = _check_every_crash_point(
        tmp_path,
        mode,
        prepare=lambda repo: None,
        act=lambda repo: repo.create(_pending()),
        commit_step="link",
    )

    assert {"write", "fsync", "link", "fsync_dir"} <= set(steps)


@pytest.mark.parametrize("mode", ["dies", "fails"])
def test_it_survives_a_crash_at_every_step_of_a_status_change(tmp_path, mode):
    def start(job: dict) -> dict:
        return {**job, "status": "running", "attempts": 1}

    steps = _check_every_crash_point(
        tmp_path,
        mode,
        prepare=lambda repo: repo.create(_pending()),
        act=lambda repo: repo.update(_JOB_ID, start),
        commit_step="rename",
    )

    assert {"write", "fsync", "rename", "unlink", "fsync_dir"} <= set(steps)


@pytest.mark.parametrize("mode", ["dies", "fails"])
def test_it_survives_a_crash_at_every_step_of_a_change_within_one_status(tmp_path, mode):
    def count_attempt(job: dict) -> dict:
        return {**job, "attempts": job["attempts"] + 1}

    steps = _check_every_crash_point(
        tmp_path,
        mode,
        prepare=lambda repo: repo.create(_pending()),
        act=lambda repo: repo.update(_JOB_ID, count_attempt),
        commit_step="rename",
    )

    assert "unlink" not in steps


# --- two names for one job ---------------------------------------------------------


def _leave_two_names(repo: JobRepository, old_status: str, new_status: str) -> tuple[dict, dict]:
    """The state of a status change that died between writing the new name and
    unlinking the old one."""
    job_id = new_id()
    old = repo.create({"id": job_id, "status": old_status, "step": "old"})
    new = {**old, "status": new_status, "step": "new", "revision": old["revision"] + 1}
    atomic.write_atomic(repo.path_for(job_id, new_status), atomic.dumps(new), tmp_dir=repo.tmp_dir)
    assert len(_names_of(repo, job_id)) == 2
    return old, new


@pytest.mark.parametrize(
    ("old_status", "new_status"),
    [("pending", "running"), ("running", "completed"), ("failed", "pending")],
)
def test_it_shows_only_the_newer_of_two_names(data_dir, old_status, new_status):
    repo = JobRepository(data_dir, statuses=STATUSES)
    other = repo.create({"id": new_id(), "status": old_status})
    _, new = _leave_two_names(repo, old_status, new_status)

    assert repo.get(new["id"]) == new
    documents, _ = repo.list(limit=10)
    assert documents == [new, other]
    assert [entry.id for entry in repo.entries()] == [new["id"], other["id"]]
    assert repo.list(statuses=[new_status], limit=10)[0] == [new]
    assert repo.list(statuses=[old_status], limit=10)[0] == [other]
    counts = repo.counts()
    assert counts[new_status] == 1
    assert counts[old_status] == 1  # only the other job
    assert sum(counts.values()) == 2


def test_it_recovers_two_names_into_the_newer_one(data_dir):
    repo = JobRepository(data_dir, statuses=STATUSES)
    _, new = _leave_two_names(repo, "pending", "running")

    report = repo.recover()

    assert report["stale_names_removed"] == 1
    assert _names_of(repo, new["id"]) == [f"{new['id']}_running.json"]
    assert repo.get(new["id"]) == new


def test_it_removes_the_stale_name_on_the_next_change(data_dir):
    repo = JobRepository(data_dir, statuses=STATUSES)
    _, new = _leave_two_names(repo, "pending", "running")

    changed = repo.update(new["id"], lambda job: {**job, "status": "completed"})

    assert changed["revision"] == new["revision"] + 1
    assert _names_of(repo, new["id"]) == [f"{new['id']}_completed.json"]


def test_it_keeps_temp_files_of_live_writers(data_dir):
    repo = JobRepository(data_dir, statuses=STATUSES)
    repo.setup()
    live = atomic.write_temp(repo.tmp_dir, b"half a job")

    repo.recover()

    assert live.exists()


def _a_dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_it_removes_temp_files_of_dead_writers_at_once(data_dir):
    repo = JobRepository(data_dir, statuses=STATUSES)
    repo.setup()
    pid = os.fork()
    if pid == 0:
        atomic.write_temp(repo.tmp_dir, b"half a job")
        os._exit(0)
    os.waitpid(pid, 0)
    assert len(_temp_files(repo)) == 1

    repo.recover()

    assert _temp_files(repo) == []


@pytest.mark.parametrize(
    "name",
    ["{pid}.0123456789ab.00ff00ff00ff00ff.tmp", "{pid}.00ff00ff00ff00ff.tmp"],
    ids=["another PID namespace", "no namespace recorded"],
)
def test_it_judges_temp_files_of_other_containers_by_age_alone(data_dir, name):
    """Beside a web container, a worker cannot look the web's pids up: a pid
    unknown here may be a live writer there."""
    repo = JobRepository(data_dir, statuses=STATUSES)
    repo.setup()
    young = repo.tmp_dir / name.format(pid=_a_dead_pid())
    young.write_bytes(b"in flight elsewhere")
    old = repo.tmp_dir / name.format(pid=_a_dead_pid()).replace("00ff", "11ff")
    old.write_bytes(b"left long ago")
    long_ago = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(old, (long_ago, long_ago))

    repo.recover()

    assert _temp_files(repo) == [young]
