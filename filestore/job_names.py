"""Job file names: ``<id>_<status>.json``, and walking the buckets that hold them.

A name says which job a file holds and in which status, so listings filter
by status without opening files (see :mod:`filestore.repository` for the
layout of the buckets). The statuses are the caller's: a repository is
given them (:func:`check_statuses`) and stores whatever tag a job carries
among them, knowing nothing of what they mean.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filestore.directories import listdir_desc
from filestore.ids import ID_LENGTH, ID_PATTERN

# A status becomes part of a file name.
STATUS_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,40}")

_SUFFIX = ".json"


@dataclass(frozen=True)
class Entry:
    """A job as seen from the file names alone."""

    id: str
    status: str


def check_statuses(statuses: Iterable[str]) -> tuple[str, ...]:
    """``statuses`` as a repository keeps them: tags fit for a file name, at least one, none twice.

    A ``StrEnum`` member is taken as its value, which is what names its files.
    """
    tags = tuple(statuses)
    for tag in tags:
        if not isinstance(tag, str) or STATUS_PATTERN.fullmatch(str(tag)) is None:
            raise ValueError(f"a status must be a short tag of letters, digits, - or _: {tag!r}")
    names = tuple(str(tag) for tag in tags)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"statuses must be distinct, and at least one: {names!r}")
    return names


def file_name(job_id: str, status: str) -> str:
    return f"{job_id}_{status}{_SUFFIX}"


def parse_name(name: str, statuses: Collection[str]) -> Entry | None:
    """The job and status a file name stands for; None when it is not the name of a job
    file with one of ``statuses``."""
    if not name.endswith(_SUFFIX) or len(name) <= ID_LENGTH + 1 + len(_SUFFIX):
        return None
    if name[ID_LENGTH] != "_":
        return None
    job_id, status = name[:ID_LENGTH], name[ID_LENGTH + 1 : -len(_SUFFIX)]
    if status not in statuses or not ID_PATTERN.fullmatch(job_id):
        return None
    return Entry(job_id, status)


def leaves(jobs_dir: Path) -> Iterator[Path]:
    """Every leaf bucket under ``jobs_dir``, newest first."""
    for top in listdir_desc(jobs_dir, None):
        for mid in listdir_desc(jobs_dir / top, None):
            for leaf in listdir_desc(jobs_dir / top / mid, None):
                yield jobs_dir / top / mid / leaf
