"""Sizes and durations of a full run (``make bench``) and of a smoke run (``--smoke``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    # Product and yardstick runs alternate this many times; the best run of
    # each counts (a noisy neighbour only ever slows a run down).
    rounds: int
    create_seconds: float
    create_connections: tuple[int, ...]
    read_sizes: tuple[int, ...]
    read_seconds: float
    read_connections: int
    # The yardstick lists and stats every file per request: at this size and
    # above its runs are capped (one connection, ``slow_yardstick_seconds``).
    slow_yardstick_size: int
    slow_yardstick_seconds: float
    timing_batches: tuple[tuple[int, float], ...]  # (jobs, seconds they are spread over)
    memory_sizes: tuple[int, ...]
    live_streams: int
    live_probe_jobs: int
    live_seconds: float
    restart_size: int
    warmup_seconds: float  # a short load run before each measured one
    timing_lead_seconds: float  # from seeding the due jobs to their due time
    memory_settle_seconds: float


FULL = Profile(
    name="full",
    rounds=2,
    create_seconds=10,
    create_connections=(16, 64),
    read_sizes=(1_000, 10_000, 100_000),
    read_seconds=5,
    read_connections=4,
    slow_yardstick_size=100_000,
    slow_yardstick_seconds=10,
    timing_batches=((200, 0.0), (1_000, 1.0)),
    memory_sizes=(0, 10_000, 100_000),
    live_streams=500,
    live_probe_jobs=20,
    live_seconds=10,
    restart_size=100_000,
    warmup_seconds=1,
    timing_lead_seconds=4,
    memory_settle_seconds=3,
)

SMOKE = Profile(
    name="smoke",
    rounds=1,
    create_seconds=1,
    create_connections=(16,),
    read_sizes=(500,),
    read_seconds=1,
    read_connections=4,
    slow_yardstick_size=100_000,
    slow_yardstick_seconds=1,
    timing_batches=((20, 0.0),),
    memory_sizes=(0, 500),
    live_streams=20,
    live_probe_jobs=3,
    live_seconds=1,
    restart_size=500,
    warmup_seconds=0,
    timing_lead_seconds=2.5,
    memory_settle_seconds=1,
)
