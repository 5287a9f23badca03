"""Container health checks: ``python deploy/healthcheck.py web|worker``.

Exit status 0 is healthy, 1 is not (the reason goes to stdout, which
``docker inspect`` shows).

- ``web``: ``GET /api/health`` on this container's port answers at all,
  200 or 503. A 503 means the server works but the worker or the queue
  does not; restarting the web server would not fix that, so it is not the
  web's liveness. That URL is also the one a TLS redirect spares.
  Standard library only: it runs every few seconds and needs no Django.
- ``worker``: the newest worker heartbeat (files or Redis, as the service
  is configured) is younger than ``JOBS_HEARTBEAT_MAX_AGE``, the rule of
  ``GET /api/health``. Cheaper than ``manage.py jobs health``, which also
  counts the queue.
"""

from __future__ import annotations

import http.client
import os
import sys
from pathlib import Path


def check_web() -> str | None:
    port = int(os.environ.get("PORT") or 8000)
    # Django answers 400 to a Host it does not serve; send the first one it does.
    allowed = (os.environ.get("DJANGO_ALLOWED_HOSTS") or "localhost").split(",")
    host = allowed[0].strip().lstrip(".")
    if host in ("", "*"):
        host = "localhost"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=4)
    try:
        connection.request("GET", "/api/health", headers={"Host": host})
        status = connection.getresponse().status
    except OSError as error:
        return f"GET /api/health failed: {error}"
    finally:
        connection.close()
    if status not in (200, 503):
        return f"GET /api/health answered {status}"
    return None


def check_worker() -> str | None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    import django

    django.setup()
    from jobs import clock, health

    try:
        beat = health.latest_heartbeat()
    except Exception as error:  # Redis out of reach raises its own errors
        return f"The worker heartbeats cannot be read: {type(error).__name__}: {error}"
    age = None if beat is None else max(0.0, clock.now() - beat["at"])
    return health.worker_problem(age)


def main(argv: list[str]) -> int:
    checks = {"web": check_web, "worker": check_worker}
    if len(argv) != 2 or argv[1] not in checks:
        print("usage: healthcheck.py web|worker", file=sys.stderr)
        return 2
    problem = checks[argv[1]]()
    print(problem or "ok")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
