"""2. Read at scale: list pages and single jobs with 1,000 to 100,000 jobs stored.

The product's directory is seeded with ``bench.seed --kind mixed`` (one job
a second up to now: the newest five minutes pending, older ones finished);
the yardstick's with its own ``<uuid>_<status>.json`` files in the same
mix. Only the web server runs. ``GET /api/jobs/<id>`` and the yardstick's
``GET /jobs/<id>`` rotate over 1,000 random ids.
"""

from __future__ import annotations

from bench.datasets import kept
from bench.load import GET_LUA, ROTATE_LUA, LoadResult, wrk
from bench.processes import http_status, running, wait_http
from bench.profiles import Profile
from bench.report import Section, ratio, verdict
from bench.systems import (
    LONG_DELAY,
    Scratch,
    product_env,
    seed_product,
    seed_yardstick,
    start_web,
    start_yardstick,
)

LIST_RATIO = 100.0  # list page at 10,000 jobs, product vs yardstick
GET_RATIO = 5.0  # get by id at 10,000 jobs
SCALE_LIMIT = 1.5  # list page time at 100,000 jobs vs 10,000
GATED_SIZE = 10_000


def _describe(result: LoadResult) -> str:
    return f"{result.rps:,.0f}/s  p50 {result.p50_ms:.1f}  p99 {result.p99_ms:.1f} ms"


def _product(profile: Profile, size: int) -> tuple[dict[str, LoadResult], dict]:
    scratch = Scratch.make(f"reads-{size}")
    keep = False
    try:
        seeded = seed_product(scratch, "--kind", "mixed", "--count", str(size))
        ids_file = scratch.root / "ids.txt"
        ids_file.write_text("\n".join(seeded["sample_ids"]) + "\n")
        web = start_web(scratch, product_env(scratch.data, **LONG_DELAY))
        paths = {
            "list": "/api/jobs?limit=50",
            "deep": f"/api/jobs?limit=50&cursor={seeded['middle_id']}",
            "completed": "/api/jobs?status=completed&limit=50",
        }
        results = {}
        with running(web):
            wait_http(web, "/api/health", want=(200, 503))
            for path in [*paths.values(), "/api/jobs/" + seeded["sample_ids"][0]]:
                for _ in range(8):  # both web workers load the views before the clock runs
                    http_status(web.url + path)
            for name, path in paths.items():
                results[name] = wrk(
                    web.url + path,
                    GET_LUA,
                    seconds=profile.read_seconds,
                    connections=profile.read_connections,
                )
            results["get"] = wrk(
                web.url,
                ROTATE_LUA,
                seconds=profile.read_seconds,
                connections=profile.read_connections,
                args=["/api/jobs/", str(ids_file)],
            )
        keep = size == profile.restart_size
        if keep:
            kept.keep(f"mixed-{size}", scratch)
        seeded.pop("sample_ids")
        return results, seeded
    finally:
        if not keep:
            scratch.remove()


def _yardstick(profile: Profile, size: int) -> tuple[dict[str, LoadResult], list[str]]:
    scratch = Scratch.make(f"reads-ref-{size}")
    notes = []
    try:
        ids = seed_yardstick(scratch, size)
        ids_file = scratch.root / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        yard = start_yardstick(scratch)
        slow = size >= profile.slow_yardstick_size
        with running(yard):
            wait_http(yard, "/jobs/" + ids[0], timeout=120)
            seconds = profile.slow_yardstick_seconds if slow else profile.read_seconds
            connections = 1 if slow else profile.read_connections
            if slow:
                notes.append(
                    f"yardstick list at {size:,} jobs: 1 connection for {seconds:.0f} s "
                    "(each request lists and stats every file)"
                )
            results = {
                "list": wrk(
                    yard.url + "/jobs?page=1&perPage=50",
                    GET_LUA,
                    seconds=seconds,
                    connections=connections,
                    timeout=120,
                ),
                "get": wrk(
                    yard.url,
                    ROTATE_LUA,
                    seconds=profile.read_seconds,
                    connections=profile.read_connections,
                    args=["/jobs/", str(ids_file)],
                ),
            }
        return results, notes
    finally:
        scratch.remove()


def measure(profile: Profile) -> Section:
    section = Section("2 reads")
    product: dict[int, dict[str, LoadResult]] = {}
    for size in profile.read_sizes:
        product[size], seeded = _product(profile, size)
        yardstick, notes = _yardstick(profile, size)
        section.notes.extend(notes)
        section.data[str(size)] = {
            "seeded": seeded,
            "product": {name: result.as_dict() for name, result in product[size].items()},
            "yardstick": {name: result.as_dict() for name, result in yardstick.items()},
        }
        gated = size == GATED_SIZE
        share = ratio(product[size]["list"].rps, yardstick["list"].rps)
        section.row(
            f"list ?limit=50, {size:,} jobs",
            _describe(product[size]["list"]),
            yardstick=_describe(yardstick["list"]),
            ratio=f"{share:,.1f}" if share else "-",
            target=f">= {LIST_RATIO:.0f} x ref" if gated else "",
            verdict=verdict(share is not None and share >= LIST_RATIO) if gated else "",
        )
        section.row(f"deep page (cursor mid), {size:,}", _describe(product[size]["deep"]))
        section.row(f"?status=completed, {size:,}", _describe(product[size]["completed"]))
        share = ratio(product[size]["get"].rps, yardstick["get"].rps)
        section.row(
            f"get by id, {size:,} jobs",
            _describe(product[size]["get"]),
            yardstick=_describe(yardstick["get"]),
            ratio=f"{share:,.1f}" if share else "-",
            target=f">= {GET_RATIO:.0f} x ref" if gated else "",
            verdict=verdict(share is not None and share >= GET_RATIO) if gated else "",
        )
        everything = [*product[size].items(), *((f"ref {k}", v) for k, v in yardstick.items())]
        errors = {
            name: (result.non2xx, result.socket_errors)
            for name, result in everything
            if result.non2xx or result.socket_errors
        }
        if errors:
            section.notes.append(f"{size:,} jobs: non-2xx / socket errors {errors}")
    sizes = sorted(product)
    if len(sizes) >= 2:
        small, large = sizes[-2], sizes[-1]
        for name, label in (
            ("list", "list page"),
            ("deep", "deep page"),
            ("completed", "status page"),
            ("get", "get by id"),
        ):
            slower = product[small][name].rps / product[large][name].rps
            gated = name == "list" and (small, large) == (GATED_SIZE, 100_000)
            section.row(
                f"{label} time, {large:,} vs {small:,}",
                f"{slower:.2f} x",
                target=f"<= {SCALE_LIMIT} x" if gated else "",
                verdict=verdict(slower <= SCALE_LIMIT) if gated else "",
            )
    return section
