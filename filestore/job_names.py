"""Job file names: ``<id>_<status>.json``, and listing the buckets that hold them.

A name says which job a file holds and in which status, so listings filter
by status without opening files (see :mod:`filestore.repository` for the
layout of the buckets).
"""

from __future__ import annotations

from dataclasses import dataclass

from filestore.directories import listdir, listdir_desc
from filestore.ids import ID_PATTERN

__all__ = ["STATUSES", "Entry", "listdir", "listdir_desc", "parse_name"]

STATUSES = ("pending", "running", "completed", "failed", "cancelled")


@dataclass(frozen=True)
class Entry:
    """A job as seen from the file names alone."""

    id: str
    status: str


def parse_name(name: str) -> Entry | None:
    """The job and status a file name stands for; None when it is not a job file's name."""
    if not name.endswith(".json") or len(name) < 33 or name[26] != "_":
        return None
    job_id, status = name[:26], name[27:-5]
    if status not in STATUSES or not ID_PATTERN.fullmatch(job_id):
        return None
    return Entry(job_id, status)
