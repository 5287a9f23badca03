"""2. Read at scale: list pages and single jobs with 1,000 to 100,000 jobs stored.

The product's directory is seeded with ``bench.seed --kind mixed`` (one job
a second up to now: the newest five minutes pending, older ones finished);
the yardstick's with its own ``<uuid>_<status>.json`` files in the same
mix. Only the web servers run. ``GET /api/jobs/<id>`` and the yardstick's
``GET /jobs/<id>`` rotate over 1,000 random ids. Runs of the product and
the yardstick alternate (``profile.rounds`` each) and the best one counts.
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
    cpu = result.server_cpu_ms_per_request
    return f"{result.rps:,.0f}/s  p50 {result.p50_ms:.1f}  p99 {result.p99_ms:.1f} ms" + (
        f"  cpu {cpu:.2f} ms" if cpu is not None else ""
    )


def _best(runs: list[LoadResult]) -> LoadResult:
    return max(runs, key=lambda run: run.rps)


def _size(profile: Profile, size: int) -> tuple[dict, dict, dict, list[str]]:
    scratch = Scratch.make(f"reads-{size}")
    ref_scratch = Scratch.make(f"reads-ref-{size}")
    keep = False
    notes = []
    try:
        seeded = seed_product(scratch, "--kind", "mixed", "--count", str(size))
        ids_file = scratch.root / "ids.txt"
        ids_file.write_text("\n".join(seeded.pop("sample_ids")) + "\n")
        ref_ids = seed_yardstick(ref_scratch, size)
        ref_ids_file = ref_scratch.root / "ids.txt"
        ref_ids_file.write_text("\n".join(ref_ids) + "\n")
        web = start_web(scratch, product_env(scratch.data, **LONG_DELAY))
        yard = start_yardstick(ref_scratch)
        slow = size >= profile.slow_yardstick_size
        ref_list = {
            "seconds": profile.slow_yardstick_seconds if slow else profile.read_seconds,
            "connections": 1 if slow else profile.read_connections,
        }
        if slow:
            notes.append(
                f"yardstick list at {size:,} jobs: 1 connection for "
                f"{ref_list['seconds']:.0f} s per run (each request lists and stats every file)"
            )
        runs: dict[str, list[LoadResult]] = {}

        def run(name: str, server, url: str, script=GET_LUA, args=None, **options) -> None:
            options.setdefault("seconds", profile.read_seconds)
            options.setdefault("connections", profile.read_connections)
            result = wrk(url, script, args=args, server=server, timeout=120, **options)
            runs.setdefault(name, []).append(result)

        with running(web, yard):
            wait_http(web, "/api/health", want=(200, 503))
            wait_http(yard, "/jobs?page=1&perPage=1", timeout=120)
            first_id = ids_file.read_text().split()[0]
            for path in ("/api/jobs?limit=50", f"/api/jobs/{first_id}"):
                for _ in range(8):  # both web workers load the views before the clock runs
                    http_status(web.url + path)
            paths = {
                "list": "/api/jobs?limit=50",
                "deep": f"/api/jobs?limit=50&cursor={seeded['middle_id']}",
                "completed": "/api/jobs?status=completed&limit=50",
            }
            for round_index in range(profile.rounds):
                run("list", web, web.url + paths["list"])
                run("ref list", yard, yard.url + "/jobs?page=1&perPage=50", **ref_list)
                run("get", web, web.url, ROTATE_LUA, ["/api/jobs/", str(ids_file)])
                run("ref get", yard, yard.url, ROTATE_LUA, ["/jobs/", str(ref_ids_file)])
                if round_index == 0:
                    run("deep", web, web.url + paths["deep"])
                    run("completed", web, web.url + paths["completed"])
        keep = size == profile.restart_size
        if keep:
            kept.keep(f"mixed-{size}", scratch)
        product = {name: _best(runs[name]) for name in ("list", "deep", "completed", "get")}
        yardstick = {name: _best(runs[f"ref {name}"]) for name in ("list", "get")}
        all_runs = {name: [r.as_dict() for r in results] for name, results in runs.items()}
        return product, yardstick, {"seeded": seeded, "runs": all_runs}, notes
    finally:
        if not keep:
            scratch.release()
        ref_scratch.release()


def measure(profile: Profile) -> Section:
    section = Section("2 reads")
    product: dict[int, dict[str, LoadResult]] = {}
    for size in profile.read_sizes:
        product[size], yardstick, details, notes = _size(profile, size)
        section.notes.extend(notes)
        section.data[str(size)] = {
            "product": {name: result.as_dict() for name, result in product[size].items()},
            "yardstick": {name: result.as_dict() for name, result in yardstick.items()},
            **details,
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
    section.notes.append(
        f"{profile.read_connections} connections (2 wrk threads); best of {profile.rounds} "
        "alternating run(s); cpu = server CPU (user + system) per request"
    )
    return section
