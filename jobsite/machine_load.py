"""How busy the machine's processors are: read by admission's meter and by the benchmarks.

Plain Python (no Django), so that ``bench/`` measures the machine with the
same arithmetic as the product (see :mod:`jobs.capacity`).
"""

from __future__ import annotations


class MachineLoad:
    """The share of the machine's processor time in use between two readings.

    Read from ``/proc/stat``: every core's time, less idle and waiting for
    I/O. ``None`` where there is no such file, and at the first reading.
    """

    def __init__(self, path: str = "/proc/stat") -> None:
        self.path = path
        self._last: tuple[int, int] | None = None

    def read(self) -> float | None:
        try:
            with open(self.path, "rb") as handle:
                fields = [int(value) for value in handle.readline().split()[1:]]
            idle = fields[3] + fields[4]  # idle, iowait
            total = sum(fields[:8])  # guest time is counted in user already
        except (OSError, ValueError, IndexError):
            return None
        last, self._last = self._last, (total - idle, total)
        if last is None or total <= last[1]:
            return None
        return min(1.0, max(0.0, (total - idle - last[0]) / (total - last[1])))
