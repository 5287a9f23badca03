"""``manage.py serve``: the whole system (web + worker) in one command.

Starts the web server and ``manage.py qcluster`` as child processes, prints
where the page is, and stops both cleanly on one Ctrl-C (or SIGTERM). If
either child dies, the other is stopped too and the command fails, so a
half-running system never looks healthy. Children get SIGTERM if this
process dies, so none is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

_PR_SET_PDEATHSIG = 1
# Requests (event streams included) one web process serves at once; beyond
# it granian stops accepting connections. Event streams are capped below it
# (jobs.api.events.MAX_ASYNC_STREAMS), so the API keeps room. See the
# README's "Serving" section.
WEB_CONCURRENCY = 12_000
# How long the web server may take to accept connections before the
# command says where it runs anyway (a slow first start compiles and
# imports a lot).
LISTEN_WAIT_SECONDS = 60.0


def check_address(host: str, port: int) -> None:
    """Fail with a clear message when ``host:port`` cannot be listened on.

    The web server would find out too, but as a Rust stack trace after
    the command had said where it runs. Checked with ``SO_REUSEADDR``, as
    the server binds: a port left in ``TIME_WAIT`` by a server just
    stopped is free to it, one another process listens on is not.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandError(f"--host {host!r} is not an address: {exc.strerror}.") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"Port {port} on {host} is already in use by another program. Stop it, "
                    f"or choose another port: PORT={port + 1 if port < 65535 else 8000} "
                    "make run (or manage.py serve --port N)."
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise CommandError(
                    f"{host} is not an address of this machine (--host, JOBS_HOST)."
                ) from None
            if exc.errno == errno.EACCES:
                raise CommandError(
                    f"Port {port} needs privileges this user lacks; use a port above 1023."
                ) from None
            raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Command(BaseCommand):
    help = "Run the web server and the worker together until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host",
            default=os.environ.get("JOBS_HOST", "127.0.0.1"),
            help="Address to listen on (default: JOBS_HOST or 127.0.0.1).",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=settings.PORT,
            help="Port to listen on (default: PORT or 8000).",
        )
        parser.add_argument(
            "--web-workers", type=int, default=2, help="Web server processes (default: 2)."
        )

    def web_command(self, host: str, port: int, workers: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "rsgi",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--backpressure",
            str(WEB_CONCURRENCY),
            "--backlog",
            "2048",
            # HTTP/1.1 only. With "auto" (HTTP/1 or cleartext HTTP/2) granian
            # first waits, with no time limit, for enough bytes to tell the
            # two apart: a connection that sends nothing, or a prefix of the
            # HTTP/2 preface, would stay open for good. Browsers speak HTTP/2
            # only over TLS, which a proxy in front terminates.
            "--http",
            "1",
            # A connection must send a whole request head within this time:
            # from when it opens, and again each time it goes idle after an
            # answer; else granian closes it. A slow body is cut off by
            # jobsite.rsgi. Neither holds a thread meanwhile.
            "--http1-header-read-timeout",
            "10000",
            "--no-ws",
            # Open event streams never end by themselves: on stop, a web
            # process gets this long to close them before it is killed.
            "--workers-kill-timeout",
            "10",
            "--log-level",
            "warning",
            "jobsite.rsgi:application",
        ]

    def handle(self, *args, **options):
        host, port = options["host"], options["port"]
        if not 1 <= port <= 65535:
            raise CommandError(f"--port {port} is not a valid port number.")
        stopping = False

        def request_stop(signum, frame):
            nonlocal stopping
            stopping = True

        check_address(host, port)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        children = {
            "web": self._spawn(self.web_command(host, port, options["web_workers"])),
            "worker": self._spawn([sys.executable, "manage.py", "qcluster"]),
        }
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        # Where it runs is said once the web server accepts connections (a
        # failure to start is reported below instead).
        deadline = time.monotonic() + LISTEN_WAIT_SECONDS
        while (
            not stopping
            and children["web"].poll() is None
            and time.monotonic() < deadline
            and not _accepts(shown_host, port)
        ):
            time.sleep(0.1)
        if not stopping and children["web"].poll() is None:
            self._say_where(shown_host, port)
        failed = None
        while not stopping and failed is None:
            for name, child in children.items():
                if child.poll() is not None:
                    failed = name
            time.sleep(0.2)
        if failed:
            self.stderr.write(
                f"The {failed} process exited ({children[failed].returncode}); stopping the rest."
            )
        self._stop_all(children.values())
        if failed:
            raise CommandError(f"the {failed} process stopped unexpectedly")
        self.stdout.write("Stopped.")

    def _say_where(self, shown_host: str, port: int) -> None:
        # Imported here: bench/systems.py imports this module (for its
        # server flags) before Django is set up.
        from jobs.photos import source_name

        source = source_name()
        self.stdout.write(self.style.SUCCESS(f"Jobs is running at http://{shown_host}:{port}/"))
        self.stdout.write(
            f"Photo source: {source}"
            + (
                " (offline demo photos; set UNSPLASH_ACCESS_KEY for Unsplash)"
                if source == "demo"
                else f" ({settings.UNSPLASH_API_URL})"
            )
        )
        self.stdout.write(
            f"Admin: http://{shown_host}:{port}/admin/ (create a login with "
            "`.venv/bin/python manage.py createsuperuser`, or set DJANGO_SUPERUSER_USERNAME "
            "and DJANGO_SUPERUSER_PASSWORD before `make run`)"
        )
        self.stdout.write(f"Data: {settings.JOBS_DATA_DIR}    Stop: Ctrl-C")

    @staticmethod
    def _spawn(command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)

    @staticmethod
    def _stop_all(children, timeout: float = 15.0) -> None:
        # Each child stops its own processes when asked (SIGTERM to the
        # group leader); whatever is left of its group after that is killed.
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
