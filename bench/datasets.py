"""Seeded data directories that more than one measurement uses.

Seeding 100,000 jobs takes a minute, so a measurement may keep its seeded
scratch directory (servers stopped) for a later one (the restart
measurement starts the system on the 100,000-job directories of the read
and memory measurements). Whatever is kept is released at the end of the run.
"""

from __future__ import annotations

from bench.systems import Scratch


class Kept:
    def __init__(self) -> None:
        self._scratches: dict[str, Scratch] = {}

    def keep(self, name: str, scratch: Scratch) -> None:
        old = self._scratches.pop(name, None)
        if old is not None and old.root != scratch.root:
            old.release()
        self._scratches[name] = scratch

    def get(self, name: str) -> Scratch | None:
        return self._scratches.get(name)

    def release(self, name: str) -> None:
        scratch = self._scratches.pop(name, None)
        if scratch is not None:
            scratch.release()

    def release_all(self) -> None:
        for name in list(self._scratches):
            self.release(name)


kept = Kept()
