"""Run the measurements one after another and report them.

Measurements never overlap (this is meant for a small machine: two servers
under load at once would measure each other). A measurement that fails is
reported as failed and the others still run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench import create, live, memory, reads, restart, sustained, timing
from bench.datasets import kept
from bench.load import GET_LUA, POST_LUA, wrk_path
from bench.processes import PROJECT, leftovers
from bench.profiles import FULL, SMOKE
from bench.report import MISS, PASS, Section, table, write_json
from bench.systems import REFERENCE_SERVER, file_create_probe, remove_released

RESULTS = Path(__file__).resolve().parent / "results"
MEASUREMENTS = {
    "create": create.measure,
    "reads": reads.measure,
    "timing": timing.measure,
    "memory": memory.measure,
    "live": live.measure,
    "restart": restart.measure,
    "sustained": sustained.measure,
}


def _version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "missing"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def _environment() -> dict:
    commit = _version(["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"])
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cores": os.cpu_count(),
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "node": _version(["node", "--version"]),
        "wrk": _version(["wrk", "--version"]),
        "commit": commit,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _missing_tools() -> list[str]:
    missing = []
    if wrk_path() is None:
        missing.append("wrk (apt-get install wrk)")
    if shutil.which("node") is None:
        missing.append("node (Node 20)")
    for path in (REFERENCE_SERVER, POST_LUA, GET_LUA):
        if not path.is_file():
            missing.append(str(path))
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmarks beside the Node.js yardstick.")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 s runs")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: {', '.join(MEASUREMENTS)}"
    )
    parser.add_argument("--output", type=Path, default=None, help="where to write the JSON")
    parser.add_argument(
        "--rates",
        default=None,
        help="sustained: comma-separated jobs/s (env BENCH_SUSTAINED_RATES; "
        "default 300,600,1000,1500,2000,3000)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="sustained: seconds of arrivals per rate (env BENCH_SUSTAINED_SECONDS; default 20)",
    )
    parser.add_argument(
        "--mixed-rate",
        type=int,
        default=None,
        help="sustained: jobs/s of the product's run with mixed delays, 0 for none "
        "(env BENCH_SUSTAINED_MIXED_RATE; default 1000)",
    )
    args = parser.parse_args(argv)
    profile = SMOKE if args.smoke else FULL
    try:
        sustained_options = sustained.options_for(
            profile, rates=args.rates, duration=args.duration, mixed_rate=args.mixed_rate
        )
    except ValueError as exc:
        parser.error(str(exc))
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(MEASUREMENTS)
    unknown = [name for name in chosen if name not in MEASUREMENTS]
    if unknown:
        parser.error(f"unknown measurement(s): {', '.join(unknown)}")
    missing = _missing_tools()
    if missing:
        print("Cannot run the benchmarks; missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    output = args.output or RESULTS / ("smoke.json" if args.smoke else "latest.json")
    environment = _environment()
    print(
        f"Benchmarks ({profile.name}) {environment['date']}, {environment['cores']} cores, "
        f"{environment['machine']}, commit {environment['commit']}, "
        f"load {environment['load_average_at_start'][0]}",
        flush=True,
    )
    started = time.monotonic()
    sections: list[Section] = []
    try:
        for name in chosen:
            section_started = time.monotonic()
            load_before = os.getloadavg()
            create_us = file_create_probe()
            print(f"... {name}", flush=True)
            try:
                if name == "sustained":
                    section = sustained.measure(profile, sustained_options)
                else:
                    section = MEASUREMENTS[name](profile)
            except Exception as exc:
                traceback.print_exc()
                label = f"{list(MEASUREMENTS).index(name) + 1} {name}"
                section = Section(label, error=f"{type(exc).__name__}: {exc}".splitlines()[0])
            section.data["seconds"] = round(time.monotonic() - section_started, 1)
            section.data["file_create_us_before"] = create_us
            section.data["load_average_before_after"] = [
                [round(x, 2) for x in load_before],
                [round(x, 2) for x in os.getloadavg()],
            ]
            sections.append(section)
    finally:
        kept.release_all()
        remove_released()
    left = leftovers()
    rows = [row for section in sections for row in section.rows]
    document = {
        "profile": profile.name,
        "environment": environment,
        "seconds": round(time.monotonic() - started, 1),
        "summary": {
            "pass": sum(row.verdict == PASS for row in rows),
            "miss": sum(row.verdict == MISS for row in rows),
            "failed_measurements": [section.name for section in sections if section.error],
            "leftover_processes": left,
        },
        "rows": [row.__dict__ for row in rows],
        "measurements": {
            section.name: {"data": section.data, "notes": section.notes, "error": section.error}
            for section in sections
        },
    }
    write_json(output, document)
    print()
    print(
        f"Benchmarks ({profile.name}) {environment['date']}, {environment['cores']} cores, "
        f"took {document['seconds']:.0f} s"
    )
    print(table(sections))
    summary = document["summary"]
    failed = summary["failed_measurements"]
    print(
        f"\n{summary['pass']} PASS, {summary['miss']} MISS"
        + (f", failed: {', '.join(failed)}" if failed else "")
        + (f", LEFTOVER PROCESSES: {left}" if left else ", no process left behind")
    )
    print(f"JSON: {output}")
    return 1 if summary["failed_measurements"] or left else 0
