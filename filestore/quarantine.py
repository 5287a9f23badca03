"""Files that cannot be read, moved aside so that they never break a listing."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from filestore import atomic

logger = logging.getLogger(__name__)


class Quarantine:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def move(self, path: Path, reason: BaseException) -> None:
        """Move ``path`` aside (or, when even that fails, log it and leave it)."""
        target = self.directory / f"{path.name}.{time.time_ns()}"
        try:
            atomic.ensure_dir(self.directory)
            os.rename(path, target)
            atomic.fsync_dir(path.parent)
        except FileNotFoundError:
            return
        except OSError as exc:
            logger.error(
                "Skipped unreadable file %s (%s); could not quarantine it: %s", path, reason, exc
            )
            return
        logger.error("Moved unreadable file %s to %s: %s", path, target, reason)

    def count(self) -> int:
        """How many unreadable files have been moved aside."""
        try:
            return sum(1 for _ in os.scandir(self.directory))
        except FileNotFoundError:
            return 0
