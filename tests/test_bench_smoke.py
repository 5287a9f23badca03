"""``bench/run.py --smoke`` runs every measurement end to end and reports it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SHARED = PROJECT.parent / "shared" / "bench"
MEASUREMENTS = (
    "1 create",
    "2 reads",
    "3 timing",
    "4 memory",
    "5 live",
    "6 restart",
    "7 sustained",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
    ),
    pytest.mark.skipif(shutil.which("node") is None, reason="node (Node 20) is not installed"),
    pytest.mark.skipif(
        not (SHARED / "reference-server.mjs").is_file(),
        reason=f"the yardstick is not at {SHARED}",
    ),
    pytest.mark.timeout(240),
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    output = tmp_path_factory.mktemp("bench") / "smoke.json"
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--output", str(output)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    return done, output


def test_it_finishes_without_a_failed_measurement_or_a_leftover_process(smoke_run):
    done, _ = smoke_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no process left behind" in done.stdout


def test_it_prints_every_figure_with_its_target_and_verdict(smoke_run):
    done, _ = smoke_run
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["measure", "figure"])
    assert lines[header].split() == [
        "measure",
        "figure",
        "product",
        "yardstick",
        "ratio",
        "target",
        "result",
    ]
    table = "\n".join(lines[header:])
    for name in MEASUREMENTS:
        assert name in table
    assert "PASS" in table


def test_it_writes_valid_json_matching_the_table(smoke_run):
    done, output = smoke_run
    document = json.loads(output.read_text())
    assert document["profile"] == "smoke"
    assert document["environment"]["cores"] >= 1
    assert set(document["measurements"]) == set(MEASUREMENTS)
    assert document["summary"]["failed_measurements"] == []
    assert document["summary"]["leftover_processes"] == []
    rows = document["rows"]
    assert rows and all(row["verdict"] in ("PASS", "MISS", "") for row in rows)
    assert sum(row["verdict"] in ("PASS", "MISS") for row in rows) == (
        document["summary"]["pass"] + document["summary"]["miss"]
    )
    for row in rows:
        assert row["figure"] in done.stdout
    create = document["measurements"]["1 create"]["data"]["c16"]
    assert create["product"]["requests"] > 0 and create["yardstick"]["requests"] > 0
    assert create["product_integrity"]["ok"]


def test_it_runs_a_sustained_stream_on_both_systems_and_accounts_for_every_job(smoke_run):
    _, output = smoke_run
    section = json.loads(output.read_text())["measurements"]["7 sustained"]["data"]
    assert section["rates"], "no rate was measured"
    for pair in section["rates"].values():
        for name in ("product", "yardstick"):
            run = pair[name]
            assert run["offered"] > 0 and run["answered_2xx"] > 0, (name, run["statuses"])
            assert run["lost"] == 0, (name, run)
            assert run["final"] + run["not_final"] == run["answered_2xx"]
            assert run["lateness"]["p50_ms"] is not None
            assert run["client_cpu_seconds_per_1000_requests"] > 0
            assert run["cpu_busy_before"] is None or 0 <= run["cpu_busy_before"] <= 1
            assert run["exited"] == {}, (name, run["exited"])
            assert all(value > 0 for value in run["cpu_ms_per_job"].values()), run
        assert pair["product"]["run_twice"] == 0
    assert set(section["highest_rate_held"]) == {"product", "yardstick"}
    # Each run has a fake Unsplash of its own: one system's backlog of calls
    # must not weigh on the next run.
    fakes = [
        run["fake_unsplash_pid"] for pair in section["rates"].values() for run in pair.values()
    ]
    assert len(set(fakes)) == len(fakes) == 2 * len(section["rates"])


def test_it_runs_the_product_with_mixed_delays_and_accounts_for_every_job(smoke_run):
    _, output = smoke_run
    section = json.loads(output.read_text())["measurements"]["7 sustained"]["data"]
    mixed = section["mixed_delays"]
    assert len(mixed["delays"]) > 1
    run = mixed["product"]
    assert run["offered"] > 0 and run["answered_2xx"] > 0, run["statuses"]
    assert run["lost"] == 0 and run["run_twice"] == 0, run
    assert run["final"] == run["answered_2xx"], run
    assert run["exited"] == {}, run["exited"]
    assert all(value > 0 for value in run["cpu_ms_per_job"].values()), run
    # Lateness is counted from each job's own delay: none finished before it was due.
    assert run["lateness"]["p50_ms"] is not None and run["lateness"]["p50_ms"] > -1000
