"""HTTP load with ``wrk`` and the lua scripts that print one ``JSON {...}`` summary line."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.processes import PROJECT, Server, cpu_seconds

SHARED = PROJECT.parent / "shared" / "bench"
POST_LUA = SHARED / "post.lua"
GET_LUA = SHARED / "get.lua"
ROTATE_LUA = Path(__file__).resolve().parent / "lua" / "rotate.lua"


@dataclass
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int
    connections: int
    # CPU (user + system) the measured server used per answered request.
    server_cpu_ms_per_request: float | None = None

    @property
    def ok(self) -> int:
        """Answers with a 2xx or 3xx status."""
        return self.requests - self.non2xx

    def as_dict(self) -> dict:
        return asdict(self)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk(
    url: str,
    script: Path,
    *,
    seconds: float,
    connections: int,
    threads: int = 2,
    timeout: float = 30.0,
    args: list[str] | None = None,
    server: Server | None = None,
) -> LoadResult:
    """Run wrk against ``url`` and return its summary (with the CPU ``server`` used)."""
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    if args:
        command += ["--", *args]
    pids = server.tree() if server is not None else []
    cpu_before = cpu_seconds(pids)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + timeout + 30, check=False
    )
    cpu_used = cpu_seconds(pids) - cpu_before
    line = next((line for line in done.stdout.splitlines() if line.startswith("JSON ")), None)
    if line is None:
        output = done.stdout + done.stderr
        raise RuntimeError(f"wrk printed no summary ({done.returncode}):\n{output}")
    summary = json.loads(line[5:])
    duration = summary["duration_us"] / 1e6
    return LoadResult(
        requests=summary["requests"],
        seconds=round(duration, 3),
        rps=round(summary["requests"] / duration, 2) if duration else 0.0,
        p50_ms=summary["p50_ms"],
        p99_ms=summary["p99_ms"],
        max_ms=summary["max_ms"],
        non2xx=summary["non2xx3xx"],
        socket_errors=summary["socket_errors"],
        connections=connections,
        server_cpu_ms_per_request=(
            round(1000 * cpu_used / summary["requests"], 3)
            if server is not None and summary["requests"]
            else None
        ),
    )
