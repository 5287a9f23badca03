"""The sustained benchmark's own bookkeeping (bench/sustained.py), without a run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import sustained
from bench.processes import Server, pid_alive, start
from bench.profiles import FULL
from bench.report import MISS


def _system(tmp_path, servers: list[Server], trees: dict[str, int]) -> sustained.RunningSystem:
    return sustained.RunningSystem(
        name="test",
        port=0,
        requests=[b""],
        delays=(sustained.DELAY_SECONDS,),
        job_id=lambda head, body: None,
        trees=trees,
        servers=servers,
        data_dir=tmp_path,
        warmup_bytes=b"",
        unfinished=lambda ignore: 0,
        outcomes=dict,
    )


def test_a_process_that_ended_during_the_run_is_named_with_its_code_and_last_words(tmp_path):
    command = [
        sys.executable,
        "-c",
        "print('starting'); print('out of memory'); raise SystemExit(3)",
    ]
    server = start("dying", command, env={}, log_dir=tmp_path)
    server.process.wait(timeout=20)
    assert not pid_alive(server.pid)

    exited = sustained._exited(_system(tmp_path, [server], {"web": server.pid}))

    assert exited == {"web": "exited with code 3; last log line: out of memory"}


def test_a_process_still_running_is_not_reported(tmp_path):
    server = start(
        "sleeping", [sys.executable, "-c", "import time; time.sleep(30)"], env={}, log_dir=tmp_path
    )
    try:
        assert sustained._exited(_system(tmp_path, [server], {"web": server.pid})) == {}
    finally:
        server.stop()


def test_a_child_role_that_ended_is_reported_from_the_parents_log(tmp_path):
    # The product's roles are children of `manage.py serve`: the code of a
    # child is not this process's to read, its parent's log is what says why.
    parent = start(
        "parent", [sys.executable, "-c", "import time; time.sleep(30)"], env={}, log_dir=tmp_path
    )
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=20)
    parent.log_path.write_text("worker killed by signal 9\n")
    try:
        exited = sustained._exited(
            _system(tmp_path, [parent], {"web": parent.pid, "worker": child.pid})
        )
    finally:
        parent.stop()
    assert exited == {"worker": "ended; last log line: worker killed by signal 9"}


def _result(**changes) -> dict:
    result = {
        "lateness": {"p50_ms": 10.0, "p99_ms": 20.0, "max_ms": 30.0},
        "lateness_includes_unfinished_lower_bounds": 0,
        "drain_seconds": 0.1,
        "drain_timeout_seconds": 30,
        "cpu_ms_per_job": {"web": 0.41, "worker": 0.48},
        "exited": {},
        "errors": 0,
        "refused_503": 0,
        "create_latency_from_due_send": {"p50_ms": 1.0, "p99_ms": 2.0},
        "achieved_per_second": 100.0,
        "sent_late": 0,
        "final": 10,
        "answered_2xx": 10,
        "lost": 0,
        "run_twice": 0,
        "held": True,
    }
    result.update(changes)
    return result


def test_the_cost_row_shows_each_process_trees_cpu_per_job():
    assert sustained._cells(_result())["cost"] == "0.41+0.48 ms"
    assert sustained._within_budget(_result()) == sustained.verdict(True)


def test_a_process_that_ended_shows_no_cpu_figure_and_misses_the_budget():
    result = _result(
        cpu_ms_per_job={"web": None, "worker": 0.48}, exited={"web": "exited with code 1"}
    )
    assert sustained._cells(result)["cost"] == "-+0.48 ms (the web process ended)"
    assert sustained._within_budget(result) == sustained.verdict(False)


def test_requests_are_sent_in_turn_each_with_its_own_delay():
    client = sustained.Arrivals(
        0,
        [b"five", b"ten", b"fifteen"],
        lambda head, body: None,
        rate=10,
        duration=1,
        max_connections=1,
        request_timeout=1,
    )

    assert [client.request_for(i) for i in range(5)] == [
        b"five",
        b"ten",
        b"fifteen",
        b"five",
        b"ten",
    ]


def test_the_mixed_run_is_on_by_default_and_can_be_turned_off(monkeypatch):
    monkeypatch.delenv("BENCH_SUSTAINED_MIXED_RATE", raising=False)
    full = sustained.options_for(FULL)
    assert full.mixed_rate == sustained.GOAL_RATE
    assert full.mixed_delays == sustained.MIXED_DELAYS
    assert sustained.options_for(FULL, mixed_rate=0).mixed_rate == 0
    monkeypatch.setenv("BENCH_SUSTAINED_MIXED_RATE", "300")
    assert sustained.options_for(FULL).mixed_rate == 300
    with pytest.raises(ValueError, match="mixed"):
        sustained.options_for(FULL, mixed_rate=-1)


def test_the_mixed_run_has_rows_of_its_own_and_is_held_to_the_budget():
    section = sustained.Section("7 sustained")
    result = _result(cpu_ms_per_job={"web": 0.45, "worker": 0.62}, not_final=0)

    sustained._rate_rows(section, "1,000/s, delays 5-24 s mixed", 1000, result)

    rows = {row.figure: row for row in section.rows}
    cost = rows["1,000/s, delays 5-24 s mixed: CPU ms per create (web) + per job (worker)"]
    assert cost.product == "0.45+0.62 ms"
    assert cost.verdict == MISS  # the worker's 0.62 ms is over the 0.5 ms budget
    assert rows["1,000/s, delays 5-24 s mixed: held"].product == "held"
    assert "one delay" in rows["1,000/s, delays 5-24 s mixed: 2xx/s, 503s, other errors"].yardstick


def test_cpu_per_job_leaves_out_perfs_window():
    # 12 s of CPU over 10,000 jobs, of which 3 s over the 2,000 of the window.
    assert sustained.per_job_outside(12.0, 3.0, 10_000, 2_000) == 1.125
    # No window (perf not run): the whole run.
    assert sustained.per_job_outside(12.0, None, 10_000, 0) == 1.2
    # A tree that ended has no figure.
    assert sustained.per_job_outside(None, 3.0, 10_000, 2_000) is None


def test_the_window_counts_creates_for_the_web_and_runs_for_the_worker(tmp_path):
    window = sustained.PerfWindow({}, tmp_path, start_in=0, seconds=0)
    acked = [9.9, 10.0, 10.5, 11.9, 12.0]
    due = [14.9, 15.0, 10.2, 11.0, 17.0]
    assert window.jobs("web", acked, due) == 0  # not run: no window, no jobs
    window.started, window.ended = 10.0, 12.0

    assert window.jobs("web", acked, due) == 3  # acknowledged in [10, 12)
    assert window.jobs("worker", acked, due) == 2  # due in [10, 12)


def test_calls_per_job_are_per_job_of_the_window():
    counts = {"web": {"fsync": 3, "syncfs": 7, "all": 500}, "worker": None}
    jobs = {"web": 10, "worker": 12}

    assert sustained._per_job(counts, sustained.FLUSH_CALLS, jobs) == {"web": 1.0, "worker": None}
    assert sustained._per_job(counts, ("all",), {"web": 0}) == {"web": None, "worker": None}


def test_a_perf_window_measures_the_trees_cpu_and_stops_perf(tmp_path, monkeypatch):
    stopped = []

    class Counter:
        def __init__(self, name, root, log_dir):
            self.name = name
            self.told = []

        def resume(self):
            self.told.append("enable")
            return True

        def pause(self):
            self.told.append("disable")
            return True

        def stop(self):
            stopped.append(self.name)
            assert self.told == ["enable", "disable"]
            return {"all": 42}

    monkeypatch.setattr(sustained, "FlushCount", Counter)
    monkeypatch.setattr(sustained, "PERF_ATTACH_SECONDS", 0)
    used = iter([1.0, 5.0, 1.5, 5.25])
    monkeypatch.setattr(sustained, "tree_cpu_seconds", lambda root: next(used))
    window = sustained.PerfWindow({"web": 1, "worker": 2}, tmp_path, start_in=0, seconds=0.05)

    window.start()
    window.finish()

    assert window.cpu == {"web": 0.5, "worker": 0.25}
    assert window.started is not None and window.ended > window.started
    assert sorted(stopped) == ["perf-web", "perf-worker"]
    assert window.counts == {"web": {"all": 42}, "worker": {"all": 42}}


def test_a_run_that_ends_before_the_window_opens_never_starts_perf(tmp_path, monkeypatch):
    monkeypatch.setattr(sustained, "FlushCount", lambda *a: pytest.fail("perf started"))
    window = sustained.PerfWindow({"web": 1}, tmp_path, start_in=30, seconds=10)

    window.start()
    window.finish()

    assert window.started is None and window.counts == {}
