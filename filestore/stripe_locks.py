"""Per-job locks without a lock per job: a fixed set of lock files, one per stripe of ids.

Updates of one job are serialised by an ``flock`` on the job's stripe, so
two processes never interleave read-modify-write cycles on the same job,
while writers of jobs on other stripes go on in parallel. Closing the file
descriptor releases the lock, also when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

LOCK_STRIPES = 256


class StripeLocks:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        # The lock files' names, made once: a batch takes a stripe per job.
        self._paths = [
            os.path.join(directory, f"{stripe:03d}.lock") for stripe in range(LOCK_STRIPES)
        ]

    @staticmethod
    def stripe(job_id: str) -> int:
        return zlib.crc32(job_id.encode()) % LOCK_STRIPES

    @contextlib.contextmanager
    def one(self, job_id: str) -> Iterator[None]:
        """Hold the lock of ``job_id``'s stripe."""
        with self.many((job_id,)):
            yield

    @contextlib.contextmanager
    def many(self, job_ids: Iterable[str]) -> Iterator[None]:
        """Hold the locks of several jobs: each stripe once, in one order for every process.

        Taking stripes in ascending order means two batches can never wait
        for each other in a cycle. (An ``flock`` conflicts even between two
        descriptors of one process, so a stripe is never taken twice.)
        """
        stripes = sorted({self.stripe(job_id) for job_id in job_ids})
        fds: list[int] = []
        try:
            for stripe in stripes:
                fd = os.open(self._paths[stripe], os.O_RDWR | os.O_CREAT, 0o600)
                fds.append(fd)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            for fd in fds:
                os.close(fd)
