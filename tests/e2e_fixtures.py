"""What the browser tests share: the running system, Chromium, a page, and a
proxy between them that can cut, refuse or freeze the page's connections.

A test module imports the ``*_fixture`` functions it uses (pytest finds
fixtures in a module's namespace, under the names given here)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.fake_unsplash import FakeUnsplash
from tests.system import System, free_port

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]


@pytest.fixture(scope="module", name="fake")
def fake_fixture():
    with FakeUnsplash() as server:
        yield server


@pytest.fixture(scope="module", name="system")
def system_fixture(tmp_path_factory, fake):
    running = System(
        tmp_path_factory.mktemp("e2e") / "data",
        env={
            "UNSPLASH_ACCESS_KEY": "e2e-key",
            "UNSPLASH_API_URL": fake.url,
            # The fake serves its photos itself; the page's CSP must let them in.
            "JOBS_PHOTO_HOSTS": fake.url,
        },
    ).start()
    yield running
    running.stop()


@pytest.fixture(scope="module", name="browser")
def browser_fixture():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_page(browser, url: str):
    """A new context and page at ``url``; yields the page, then checks it raised no errors."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url + "/")
    page.get_by_test_id("new-job").wait_for()
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture(name="page")
def page_fixture(browser, system):
    yield from open_page(browser, system.url)


def row(page, job_id: str, status: str | None = None):
    selector = f'[data-testid="job-row"][data-job-id="{job_id}"]'
    if status is not None:
        selector += f'[data-status="{status}"]'
    return page.locator(selector)


def wait_until(deadline: float, condition, message: str) -> None:
    """Poll ``condition`` until it holds, or fail once ``deadline`` (monotonic) has passed."""
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not by the deadline: {message}")
        time.sleep(0.05)


EVENTS_REQUEST = b"GET /api/events"


class Proxy:
    """A TCP proxy in front of the system: the network between page and server.

    - :meth:`cut_streams` closes the connections carrying the event stream,
      and with ``refuse=True`` closes new ones at once, while every other
      request goes through (a proxy or load balancer dropping long requests).
    - :meth:`freeze` stops forwarding anything without closing anything (a
      laptop asleep: its connections are silently dead); :meth:`wake` drops
      every connection, as the browser does on waking to a changed network,
      and forwards again.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        # Each connection: [client socket, upstream socket, carries the stream].
        self._connections: list[list] = []
        self._refuse_streams = False
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self._listener.close()
        self._drop(lambda _connection: True)

    def cut_streams(self, *, refuse: bool = False) -> None:
        self._refuse_streams = refuse
        self._drop(lambda connection: connection[2])

    def allow_streams(self) -> None:
        self._refuse_streams = False

    def freeze(self) -> None:
        self._flowing.clear()

    def wake(self) -> None:
        self._drop(lambda _connection: True)
        self._flowing.set()

    def streams_open(self) -> int:
        with self._lock:
            return sum(1 for connection in self._connections if connection[2])

    def _drop(self, which) -> None:
        with self._lock:
            dropped = [c for c in self._connections if which(c)]
            self._connections = [c for c in self._connections if not which(c)]
        for client, upstream, _ in dropped:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._open, args=(client,), daemon=True).start()

    def _open(self, client: socket.socket) -> None:
        self._flowing.wait()
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()  # the server is down: the browser sees the connection fail
            return
        connection = [client, upstream, False]
        with self._lock:
            self._connections.append(connection)
        threading.Thread(
            target=self._pump, args=(connection, client, upstream), daemon=True
        ).start()
        self._pump(connection, upstream, client)

    def _pump(self, connection: list, source: socket.socket, target: socket.socket) -> None:
        from_client = source is connection[0]
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if data and from_client and EVENTS_REQUEST in data:
                connection[2] = True
                if self._refuse_streams:
                    data = b""
            # Asleep: hold what arrived, forward nothing, close nothing.
            self._flowing.wait()
            with self._lock:
                current = connection in self._connections
            if not data or not current:
                self._drop(lambda c: c is connection)
                return
            try:
                target.sendall(data)
            except OSError:
                self._drop(lambda c: c is connection)
                return


@pytest.fixture(name="proxy")
def proxy_fixture(system):
    running = Proxy(system.port)
    yield running
    running.close()


@pytest.fixture(name="proxied_page")
def proxied_page_fixture(browser, proxy):
    """A page that reaches the system through :class:`Proxy`."""
    yield from open_page(browser, proxy.url)
