"""The two systems under measurement: the product and the Node.js yardstick.

Each measurement gets a scratch directory (its data directory and its
server logs) and starts the servers it needs on free loopback ports.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.load import SHARED
from bench.processes import PROJECT, PYTHON, Server, free_port, start

REFERENCE_SERVER = SHARED / "reference-server.mjs"
SECRET_KEY = "bench-secret-key-not-for-production-0123456789"
# Creates alone (sections 1 and 5): every job due in five minutes, so none
# runs during the measurement. Thousands of creates a second then fall due
# in the same few seconds, which the backpressure's capacity per due second
# would refuse: it is off here, and measured where jobs run (section 7).
LONG_DELAY = {
    "JOBS_MIN_DELAY": "300",
    "JOBS_MAX_DELAY": "300",
    "JOBS_DELAY_STEP": "5",
    "JOBS_MAX_DUE_PER_SECOND": "0",
}


# Scratch directories are deleted at the end of the run, not when their
# measurement ends. On a file system that delays the reuse of freed inodes
# (ext4 without a journal checks free inodes against their deletion time),
# deleting 100,000 files makes every file created in the next minute
# slower: one measurement's clean-up would slow the next one down.
_RELEASED: list[Scratch] = []

# Where the systems under test keep their data: by default beside the
# project, on the file system of its own ./data, not in /tmp (on the machine
# these figures come from, creating a file anywhere under /tmp cost about
# 60 times more CPU than elsewhere on the same disk). BENCH_SCRATCH moves it.
SCRATCH_ROOT = Path(os.environ.get("BENCH_SCRATCH") or Path(__file__).resolve().parent / "scratch")

# The "top of a directory hierarchy" attribute (``chattr +T``): ext4 places
# each new directory in it in a block group of its own choosing, with free
# inodes, instead of beside its parent. Set on SCRATCH_ROOT, a measurement's
# files land away from the inodes the previous run's clean-up freed (see
# _RELEASED), so a run does not pay for the one before it.
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def spread_directories(path: Path) -> bool:
    """Mark ``path`` as a top directory where the file system supports it; True if marked."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            flags = array.array("i", [0])
            fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
            if not flags[0] & _FS_TOPDIR_FL:
                flags[0] |= _FS_TOPDIR_FL
                fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags)
            return True
        finally:
            os.close(fd)
    return False


@dataclass
class Scratch:
    """A measurement's own directory: ``data/`` for the system, logs beside it."""

    root: Path

    @classmethod
    def make(cls, label: str) -> Scratch:
        SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
        spread_directories(SCRATCH_ROOT)
        return cls(Path(tempfile.mkdtemp(prefix=f"bench-{label}-", dir=SCRATCH_ROOT)))

    @property
    def data(self) -> Path:
        path = self.root / "data"
        path.mkdir(exist_ok=True)
        return path

    def release(self) -> None:
        """No longer needed: deleted by :func:`remove_released` at the end of the run."""
        if self not in _RELEASED:
            _RELEASED.append(self)


def remove_released() -> None:
    while _RELEASED:
        shutil.rmtree(_RELEASED.pop().root, ignore_errors=True)


def flush_pending_writes() -> None:
    """Write every system's pending writes to disk before a measured run.

    The product makes its creates durable with ``syncfs()``, which flushes
    every write pending on the file system, not only its own: without
    this, the product's run would pay for flushing the yardstick's files
    (it never flushes them itself) written in the run before. It costs the
    yardstick nothing: it starts its runs on a clean cache too.
    """
    os.sync()


def file_create_probe(count: int = 200) -> float:
    """Microseconds to create one small file here now (a sign of file-system noise)."""
    scratch = Scratch.make("probe")
    started = time.perf_counter()
    for index in range(count):
        fd = os.open(scratch.root / f"{index}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"x" * 600)
        os.close(fd)
    elapsed = time.perf_counter() - started
    scratch.release()
    return round(1e6 * elapsed / count, 1)


def product_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("JOBS_")}
    for key in ("UNSPLASH_ACCESS_KEY", "UNSPLASH_API_URL", "PORT", "DJANGO_DEBUG"):
        env.pop(key, None)
    env.update(
        DJANGO_SETTINGS_MODULE="jobsite.settings",
        JOBS_DATA_DIR=str(data_dir),
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        # wrk is one loopback client sending thousands of creates a second: the
        # per-client throttle is raised out of its way (it still runs on each create).
        JOBS_THROTTLE_CREATE_RATE=os.environ.get("BENCH_THROTTLE_CREATE_RATE", "1000000"),
        JOBS_THROTTLE_CREATE_BURST=os.environ.get("BENCH_THROTTLE_CREATE_BURST", "1000000"),
    )
    env.update(overrides)
    return env


def web_command(port: int, workers: int = 2) -> list[str]:
    """The web server exactly as ``manage.py serve`` (``make run``) starts it."""
    from jobs.management.commands.serve import Command

    return Command().web_command("127.0.0.1", port, workers)


def start_web(scratch: Scratch, env: dict[str, str], name: str = "web") -> Server:
    port = free_port()
    return start(name, web_command(port), env=env, log_dir=scratch.root, port=port)


def start_worker(scratch: Scratch, env: dict[str, str], name: str = "worker") -> Server:
    return start(name, [PYTHON, "manage.py", "qcluster"], env=env, log_dir=scratch.root)


def start_serve(scratch: Scratch, env: dict[str, str]) -> Server:
    """The whole system, as ``make run`` ends: ``manage.py serve``."""
    port = free_port()
    command = [PYTHON, "manage.py", "serve", "--port", str(port)]
    return start("serve", command, env=env, log_dir=scratch.root, port=port)


def start_yardstick(
    scratch: Scratch, *, delay: int = 300, unsplash_url: str | None = None
) -> Server:
    """The yardstick; with ``unsplash_url`` each job fetches a photo from it when due."""
    port = free_port()
    env = dict(os.environ, JOBS_PATH=str(scratch.data), PORT=str(port), JOB_DELAY=str(delay))
    env.pop("UNSPLASH_API_URL", None)
    if unsplash_url:
        env["UNSPLASH_API_URL"] = unsplash_url
    command = [shutil.which("node") or "node", str(REFERENCE_SERVER)]
    return start("yardstick", command, env=env, log_dir=scratch.root, port=port)


def seed_product(scratch: Scratch, *args: str) -> dict:
    """Fill the scratch data directory with :mod:`bench.seed`; return its summary."""
    done = subprocess.run(
        [PYTHON, "-m", "bench.seed", *args],
        cwd=PROJECT,
        env=product_env(scratch.data),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def seed_yardstick(scratch: Scratch, count: int, *, seed: int = 1) -> list[str]:
    """Fill the yardstick's directory in its own format; return a sample of ids.

    The status mix is the one of ``bench.seed --kind mixed``; pending jobs get
    a delay of a day so that no timer fires during the measurement.
    """
    import random

    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    ids = []
    pending = min(count, 300)
    for index in range(count):
        job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        created = now_ms - (count - index) * 1000
        if index >= count - pending:
            status, delay = "pending", 86400
        else:
            status = rng.choices(("completed", "error"), weights=(0.9, 0.1))[0]
            delay = rng.randrange(5, 301, 5)
        job = {"status": status, "creationTime": created, "delay": delay}
        if status != "pending":
            job = {
                "status": status,
                "result": "https://images.example/food.jpg",
                "timestamp": created + delay * 1000,
            }
        (scratch.data / f"{job_id}_{status}.json").write_text(json.dumps(job))
        ids.append(job_id)
    return rng.sample(ids, min(1000, len(ids)))


def count_job_files(data_dir: Path) -> dict[str, int]:
    """Job files per status under ``jobs/``, and queue messages waiting in ``ready/``."""
    counts: dict[str, int] = {}
    for _, _, names in os.walk(data_dir / "jobs"):
        for name in names:
            if name.endswith(".json") and "_" in name:
                status = name[name.rfind("_") + 1 : -5]
                counts[status] = counts.get(status, 0) + 1
    ready = sum(len(names) for _, _, names in os.walk(data_dir / "queue" / "jobs" / "ready"))
    counts["queue_ready"] = ready
    return counts


def count_yardstick_files(data_dir: Path) -> int:
    return sum(1 for name in os.listdir(data_dir) if name.endswith(".json"))
