"""Idempotency keys on files.

On-disk format: ``idempotency/<h[0:2]>/<h>.json`` where ``h`` is the
SHA-256 of the key (so any key is a safe file name). A record is::

    {"fingerprint": ..., "state": "in_progress" | "done", "created_at": ...,
     "job_id": ..., "response": {...} | null}

Claiming a key is ``link()`` of a complete temp file to the record name:
of two requests with one key arriving together exactly one creates the
record, the other sees it. The claim already names the job id the request
will create, so a request whose process died after creating the job but
before recording the response is finished by the next retry with that same
job, never with a second one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from filestore import atomic

Outcome = Literal["claimed", "replay", "in_progress", "stale", "mismatch"]


@dataclass(frozen=True)
class Claim:
    outcome: Outcome
    record: dict[str, Any]


class IdempotencyStore:
    def __init__(
        self, root: Path, tmp_dir: Path, *, stale_after: float = 30.0, clock=time.time
    ) -> None:
        self.root = Path(root)
        self.tmp_dir = Path(tmp_dir)
        self.stale_after = stale_after
        self.clock = clock

    def path_for(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.json"

    def begin(self, key: str, *, fingerprint: str, job_id: str) -> Claim:
        """Claim ``key`` for a request, or tell what an earlier request with it did.

        - ``claimed``: this request owns the key and creates ``record["job_id"]``;
        - ``replay``: a request with the same body finished; ``record["response"]``;
        - ``in_progress``: a request with the same body is still running;
        - ``stale``: that request looks dead (no answer for ``stale_after``
          seconds): the caller finishes its work with ``record["job_id"]``;
        - ``mismatch``: the key was used with a different body.
        """
        path = self.path_for(key)
        record = {
            "fingerprint": fingerprint,
            "state": "in_progress",
            "created_at": self.clock(),
            "job_id": job_id,
            "response": None,
        }
        # Read before writing anything: the retry of a finished request must
        # get its answer even when the disk is full or read-only.
        existing = self._read(path)
        if existing is not None:
            return self._decide(path, existing, fingerprint)
        data = atomic.dumps(record)
        atomic.ensure_dir(path.parent)
        for _ in range(3):
            if atomic.create_exclusive(path, data, tmp_dir=self.tmp_dir):
                return Claim("claimed", record)
            existing = self._read(path)
            if existing is not None:
                break
            # Pruned between our link and our read (or unreadable): claim it
            # again by link, so that of several requests racing for a pruned
            # key exactly one wins.
        else:
            # Unreadable every time: it holds no answer to honour; take the key.
            atomic.write_atomic(path, data, tmp_dir=self.tmp_dir)
            return Claim("claimed", record)
        return self._decide(path, existing, fingerprint)

    def _decide(self, path: Path, existing: dict[str, Any], fingerprint: str) -> Claim:
        if existing.get("fingerprint") != fingerprint:
            return Claim("mismatch", existing)
        if existing.get("state") == "done":
            return Claim("replay", existing)
        created_at = existing.get("created_at", 0)
        if not isinstance(created_at, int | float) or isinstance(created_at, bool):
            created_at = 0.0
        if self.clock() - float(created_at) > self.stale_after:
            return self._take_over(path, existing)
        return Claim("in_progress", existing)

    def _take_over(self, path: Path, stale: dict[str, Any]) -> Claim:
        """Renew a dead request's claim so that only one retry finishes its work.

        Renaming the record aside is the claim: of several retries, one
        rename succeeds. A retry that moved a record other than the stale one
        it read (another retry renewed it meanwhile) puts it back and waits.
        """
        aside = path.with_name(f"{path.name}.{secrets.token_hex(4)}.takeover")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return Claim("in_progress", stale)
        moved = self._read(aside)
        if moved is None or moved.get("created_at") != stale.get("created_at"):
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
            aside.unlink()
            return Claim("in_progress", moved or stale)
        renewed = {**stale, "created_at": self.clock()}
        taken = atomic.create_exclusive(path, atomic.dumps(renewed), tmp_dir=self.tmp_dir)
        aside.unlink()
        return Claim("stale", renewed) if taken else Claim("in_progress", stale)

    def complete(self, key: str, record: dict[str, Any], response: dict[str, Any]) -> None:
        done = {**record, "state": "done", "response": response}
        atomic.write_atomic(self.path_for(key), atomic.dumps(done), tmp_dir=self.tmp_dir)

    def release(self, key: str) -> None:
        """Forget a claim whose request failed before creating anything."""
        atomic.unlink_durable(self.path_for(key))

    def prune(self, *, older_than: float) -> int:
        """Remove records created more than ``older_than`` seconds ago."""
        cutoff = self.clock() - older_than
        removed = 0
        if not self.root.is_dir():
            return 0
        for bucket in self.root.iterdir():
            if not bucket.is_dir():
                continue
            for path in bucket.iterdir():
                record = self._read(path)
                created = record.get("created_at", 0) if record else 0.0
                if not isinstance(created, int | float):
                    created = 0.0
                if record is None or created < cutoff:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed += 1
        return removed

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            with open(path, "rb") as handle:
                record = json.loads(handle.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError):
            # Unreadable (damaged, a directory, no permission): it holds no
            # answer that can be honoured.
            return None
        return record if isinstance(record, dict) else None

    def count(self) -> int:
        if not self.root.is_dir():
            return 0
        return sum(len(os.listdir(bucket)) for bucket in self.root.iterdir() if bucket.is_dir())
