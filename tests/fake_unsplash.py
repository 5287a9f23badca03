"""A fake Unsplash API over real HTTP on 127.0.0.1, for tests and benchmarks.

It answers ``GET /photos/random`` the way UNSPLASH.md describes the real
API: an object without ``count``, an array with it, rate-limit headers on
every answer, ``403 Rate Limit Exceeded`` as plain text when the budget is
spent, ``{"errors": [...]}`` for other errors. Every URL in its photos
points back at the fake itself (``/images/...`` serves a small SVG,
``/web/...`` a small HTML page), so a page showing them never reaches an
outside host.

In tests::

    with FakeUnsplash() as fake:
        fake.script(["rate_limited_403", "ok"])    # the next two answers
        ...
        assert fake.calls == 2

Behaviours (``fake.behaviour`` sets the default, ``fake.script`` queues
one-off answers): see :data:`BEHAVIOURS`. ``remaining`` emulates the hourly
budget (``None`` = unlimited); ``latency_ms`` delays every API answer.

From the command line, for manual runs and benchmarks::

    python tests/fake_unsplash.py --port 8900 --latency-ms 100 --budget 50
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# The real API's bound for ``count``. Written out here, not imported from the
# client: the fake stands for Unsplash, and the tests check the client against it.
MAX_COUNT = 30

BEHAVIOURS = {
    "ok": "200: an object without count, an array of count photos with it",
    "object": "200: one photo object even when count is given",
    "duplicates": "200: an array of count photos where each photo appears twice",
    "empty_list": "200: an empty array",
    "empty": '404 {"errors": ["No photos found."]}',
    "invalid_photo": "200: well-formed JSON, but the photos lack their urls",
    "malformed": "200 with a body that is not valid JSON",
    "rate_limited_403": "403 text/plain 'Rate Limit Exceeded', remaining 0",
    "rate_limited_429": "429 with Retry-After",
    "unauthorized_401": '401 {"errors": ["OAuth error: The access token is invalid"]}',
    "forbidden_403": '403 {"errors": ["..."]}: a permission problem, not the rate limit',
    "bad_request_400": '400 {"errors": ["..."]}',
    "not_found_404": '404 {"errors": ["Couldn\'t find Topic"]}',
    "server_error_500": '500 {"errors": ["..."]}',
    "unavailable_503": "503 with Retry-After",
    "slow": "waits slow_seconds, then answers like ok",
    "drop": "closes the connection (TCP reset) without answering",
}

_DESCRIPTIONS = (
    ("A bowl of ramen with a soft egg", "bowl of noodles with egg and spring onion"),
    (None, "sliced avocado on toast"),
    ("Sunday pancakes", "stack of pancakes with berries"),
    ("Fresh market vegetables", "assorted vegetables on a wooden table"),
    (None, None),
    ("Margherita, straight from the oven", "pizza with basil and tomato"),
)
_PHOTOGRAPHERS = (
    ("ana_cooks", "Ana Cook"),
    ("lens_and_ladle", "Jonas Ladle"),
    ("mia.eats", "Mia Chen"),
    ("brunch_club", "Brunch Club"),
)
_COLORS = ("#c0a080", "#264026", "#f3d9b1", "#8c2626", "#d9d9d9", "#402610")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeUnsplash:
    """A fake Unsplash API server; start it with ``with`` or :meth:`start`."""

    def __init__(
        self,
        behaviour: str = "ok",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        slow_seconds: float = 5.0,
        remaining: int | None = None,
        limit: int = 50,
        retry_after: int = 30,
        access_key: str | None = None,
        public_url: str | None = None,
    ) -> None:
        _check_behaviour(behaviour)
        self.behaviour = behaviour
        self.latency_ms = latency_ms
        self.slow_seconds = slow_seconds
        self.limit = limit
        self.retry_after = retry_after
        self.access_key = access_key
        # Edits each generated photo in place before it is sent (to make one ill-typed...).
        self.photo_hook: Callable[[dict[str, Any]], None] | None = None
        # A Set-Cookie header sent with every API answer (a CDN in front may set one).
        self.set_cookie: str | None = None
        self._host = host
        self._port = port
        self._public_url = public_url
        self._lock = threading.Lock()
        self._remaining = remaining
        self._script: collections.deque[str] = collections.deque()
        self._requests: list[RecordedRequest] = []
        self._calls = 0
        self._photo_count = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- Life cycle ---

    def start(self) -> FakeUnsplash:
        self._server = _Server((self._host, self._port), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends slow answers and latency waits at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeUnsplash:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- What tests read and program ---

    @property
    def port(self) -> int:
        assert self._server is not None, "start the fake first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The API base URL (``UNSPLASH_API_URL``)."""
        host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        return f"http://{host}:{self.port}"

    @property
    def public_url(self) -> str:
        """Where photo and page links point (the fake itself unless told otherwise)."""
        return (self._public_url or self.url).rstrip("/")

    @property
    def calls(self) -> int:
        """API requests received (image and page requests are not counted)."""
        with self._lock:
            return self._calls

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def remaining(self) -> int | None:
        with self._lock:
            return self._remaining

    @remaining.setter
    def remaining(self, value: int | None) -> None:
        with self._lock:
            self._remaining = value

    def script(self, behaviours: Iterable[str]) -> None:
        """Answer the next requests with these behaviours, then fall back to ``behaviour``."""
        behaviours = list(behaviours)
        for behaviour in behaviours:
            _check_behaviour(behaviour)
        with self._lock:
            self._script.extend(behaviours)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self._calls = 0

    # --- Answering ---

    def _admit(self, request: RecordedRequest, *, authorized: bool) -> tuple[str, int | None]:
        """Record an API request; return the behaviour to answer with and the
        remaining budget to report (``None`` when the budget is not emulated).

        A request without a valid key gets a 401 and costs no budget.
        """
        with self._lock:
            self._calls += 1
            self._requests.append(request)
            if not authorized:
                return "unauthorized_401", self._remaining
            behaviour = self._script.popleft() if self._script else self.behaviour
            if self._remaining is None:
                return behaviour, None
            if self._remaining <= 0:
                return "rate_limited_403", 0
            self._remaining -= 1
            return behaviour, self._remaining

    def wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def make_photo(self) -> dict[str, Any]:
        """A photo object shaped like the API's, with an id never used before."""
        with self._lock:
            self._photo_count += 1
            n = self._photo_count
        photo_id = f"fake{n:07d}"
        description, alt_description = _DESCRIPTIONS[n % len(_DESCRIPTIONS)]
        username, name = _PHOTOGRAPHERS[n % len(_PHOTOGRAPHERS)]
        base = self.public_url
        raw = f"{base}/images/photo-{photo_id}?ixid=M3wxfakeid&ixlib=rb-4.0.3"
        photo: dict[str, Any] = {
            "id": photo_id,
            "slug": f"food-{photo_id}",
            "created_at": "2024-05-01T10:00:00Z",
            "updated_at": "2024-06-01T10:00:00Z",
            "width": 4000 + n % 7 * 100,
            "height": 3000 + n % 5 * 100,
            "color": _COLORS[n % len(_COLORS)],
            "blur_hash": "LKO2?U%2Tw=w]~RBVZRi};RPxuwH",
            "description": description,
            "alt_description": alt_description,
            "urls": {
                "raw": raw,
                "full": raw + "&q=85&fm=jpg&crop=entropy&cs=srgb",
                "regular": raw + "&q=80&fm=jpg&crop=entropy&cs=tinysrgb&w=1080",
                "small": raw + "&q=80&fm=jpg&crop=entropy&cs=tinysrgb&w=400",
                "thumb": raw + "&q=80&fm=jpg&crop=entropy&cs=tinysrgb&w=200",
                "small_s3": f"{base}/images/small-s3/photo-{photo_id}.jpg",
            },
            "links": {
                "self": f"{base}/photos/{photo_id}",
                "html": f"{base}/web/photos/{photo_id}",
                "download": f"{base}/web/photos/{photo_id}/download",
                "download_location": f"{base}/photos/{photo_id}/download?ixid=M3wxfakeid",
            },
            "likes": n % 300,
            "asset_type": "photo",
            "user": {
                "id": f"user-{username}",
                "username": username,
                "name": name,
                "links": {
                    "self": f"{base}/users/{username}",
                    "html": f"{base}/web/@{username}",
                    "photos": f"{base}/users/{username}/photos",
                },
            },
        }
        if self.photo_hook is not None:
            self.photo_hook(photo)
        return photo


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeUnsplash

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is normal here, not an error.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "FakeUnsplash/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        if parts.path.startswith("/images/"):
            return self._send_image(parts.path)
        if parts.path.startswith("/web/"):
            return self._send_page(parts.path)
        query = parse_qs(parts.query)
        request = RecordedRequest("GET", parts.path, query, dict(self.headers.items()))
        authorization = self.headers.get("Authorization", "")
        key = authorization.removeprefix("Client-ID ").strip()
        authorized = (
            authorization.startswith("Client-ID ")
            and bool(key)
            and (fake.access_key is None or key == fake.access_key)
        )
        behaviour, remaining = fake._admit(request, authorized=authorized)
        if fake.latency_ms:
            fake.wait(fake.latency_ms / 1000)
        self._answer(behaviour, parts.path, query, remaining)

    def _answer(
        self, behaviour: str, path: str, query: dict[str, list[str]], remaining: int | None
    ) -> None:
        fake = self.server.fake
        rate = {
            "X-Ratelimit-Limit": str(fake.limit),
            "X-Ratelimit-Remaining": str(fake.limit - 1 if remaining is None else remaining),
        }
        if fake.set_cookie:
            rate["Set-Cookie"] = fake.set_cookie
        if behaviour == "drop":
            # SO_LINGER with a zero timeout makes close() send a reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if behaviour == "slow":
            fake.wait(fake.slow_seconds)
            behaviour = "ok"
        if behaviour == "rate_limited_403":
            rate["X-Ratelimit-Remaining"] = "0"
            return self._send(403, b"Rate Limit Exceeded", "text/plain", rate)
        if behaviour == "rate_limited_429":
            rate["X-Ratelimit-Remaining"] = "0"
            rate["Retry-After"] = str(fake.retry_after)
            return self._send(429, b"Too Many Requests", "text/plain", rate)
        errors = {
            "unauthorized_401": (401, "OAuth error: The access token is invalid"),
            "forbidden_403": (403, "Forbidden: the application lacks the required permission"),
            "bad_request_400": (400, "topics is invalid"),
            "not_found_404": (404, "Couldn't find Topic"),
            "empty": (404, "No photos found."),
            "server_error_500": (500, "Internal server error"),
            "unavailable_503": (503, "Service unavailable"),
        }
        if behaviour in errors:
            status, message = errors[behaviour]
            if status == 503:
                rate["Retry-After"] = str(fake.retry_after)
            return self._send_json(status, {"errors": [message]}, rate)
        if path != "/photos/random":
            return self._send_json(404, {"errors": ["Couldn't find the requested resource"]}, rate)
        if behaviour == "malformed":
            return self._send(200, b'[{"id": "broken", "urls": {', "application/json", rate)
        count = _count(query)
        if count == "invalid":
            error = f"count must be between 1 and {MAX_COUNT}"
            return self._send_json(400, {"errors": [error]}, rate)
        if behaviour == "empty_list":
            return self._send_json(200, [], rate)
        if behaviour == "object" or count is None:
            photos: Any = fake.make_photo()
        else:
            photos = [fake.make_photo() for _ in range(count)]
        if behaviour == "duplicates" and isinstance(photos, list):
            photos = [photo for photo in photos[: (len(photos) + 1) // 2] for _ in (0, 1)]
        if behaviour == "invalid_photo":
            for photo in photos if isinstance(photos, list) else [photos]:
                del photo["urls"]
        self._send_json(200, photos, rate)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers or {})

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_image(self, path: str) -> None:
        label = path.rsplit("/", 1)[-1].removeprefix("photo-")[:24]
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300" width="400" '
            'height="300"><rect width="400" height="300" fill="#c0a080"/>'
            '<circle cx="200" cy="150" r="90" fill="#f3d9b1"/>'
            f'<text x="200" y="285" font-size="18" text-anchor="middle">fake {label}</text></svg>'
        )
        self._send(200, svg.encode(), "image/svg+xml", {"Cache-Control": "max-age=3600"})

    def _send_page(self, path: str) -> None:
        page = f"<!doctype html><title>Fake Unsplash</title><p>Fake Unsplash page {path}</p>"
        self._send(200, page.encode(), "text/html; charset=utf-8", {})


def _count(query: dict[str, list[str]]) -> int | str | None:
    if "count" not in query:
        return None
    try:
        count = int(query["count"][0])
    except ValueError:
        return "invalid"
    return count if 1 <= count <= MAX_COUNT else "invalid"


def _check_behaviour(behaviour: str) -> None:
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r}; known: {', '.join(BEHAVIOURS)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a fake Unsplash API on this machine.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--latency-ms", type=float, default=0, help="delay of every answer")
    parser.add_argument(
        "--budget", type=int, default=None, help="requests before 403 (default: unlimited)"
    )
    parser.add_argument("--limit", type=int, default=50, help="X-Ratelimit-Limit to report")
    parser.add_argument("--behaviour", default="ok", choices=sorted(BEHAVIOURS))
    parser.add_argument("--access-key", default=None, help="the only key accepted (default: any)")
    parser.add_argument("--public-url", default=None, help="base of photo and page links")
    args = parser.parse_args(argv)
    fake = FakeUnsplash(
        args.behaviour,
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        remaining=args.budget,
        limit=args.limit,
        access_key=args.access_key,
        public_url=args.public_url,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with fake:
        print(f"Fake Unsplash listening on {fake.url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
