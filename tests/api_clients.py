"""The API as Django serves it and as the web server's gateway serves it.

``make run`` serves the API through the RSGI gateway (:mod:`jobsite.rsgi`),
which answers ``POST /api/jobs`` itself (:mod:`jobs.api.create`) and hands
every other request to Django. Test modules marked ``both_servers`` run
each test twice (``tests/conftest.py``): with Django's test client, and with
:class:`GatewayClient`, which sends the same requests through the gateway
in this process.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor, Future
from types import SimpleNamespace

from django.http import HttpResponse
from django.test import RequestFactory


class _Inline(Executor):
    """Runs what the gateway hands to its threads in the calling thread (the test's,
    which holds the test database)."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class Proto:
    """What the gateway uses of granian's RSGI protocol object."""

    def __init__(self, body: bytes) -> None:
        self._chunks = [body] if body else []
        self.answers: list[tuple[int, list, bytes]] = []  # each answer sent, in order

    async def __call__(self) -> bytes:
        body, self._chunks = b"".join(self._chunks), []
        return body

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        if not self._chunks:
            raise StopAsyncIteration
        return self._chunks.pop(0)

    @property
    def answer(self) -> tuple[int, list, bytes] | None:
        return self.answers[-1] if self.answers else None

    def response_bytes(self, status: int, headers: list, content: bytes) -> None:
        self.answers.append((status, headers, content))

    def response_stream(self, status: int, headers: list):
        raise AssertionError("event streams are not sent through this client")


class GatewayClient:
    """Django's test client's ``get``/``post``/``generic``, through the RSGI gateway."""

    def __init__(self) -> None:
        self.factory = RequestFactory()

    def _gateway(self):
        """A gateway as the web server builds it, from the settings as they are now (a test
        may change them after making its client, as it may with Django's)."""
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler

        from jobs.api.create import CreateEndpoint
        from jobsite.rsgi import WSGIGateway

        gateway = WSGIGateway(
            WSGIHandler(), max_body_bytes=settings.JOBS_MAX_BODY_BYTES, create=CreateEndpoint()
        )
        gateway.pool = gateway.create_threads = _Inline()
        return gateway

    def generic(self, method, path, data="", content_type="application/octet-stream", **extra):
        request = self.factory.generic(method, path, data, content_type, **extra)
        return self._send(request.environ, request.environ["wsgi.input"].read())

    def get(self, path, data=None, **extra):
        request = self.factory.get(path, data, **extra)
        return self._send(request.environ, b"")

    def post(self, path, data=None, content_type="multipart/form-data; boundary=BoUnDaRy", **extra):
        request = self.factory.post(path, data, content_type, **extra)
        return self._send(request.environ, request.environ["wsgi.input"].read())

    def put(self, path, data="", content_type="application/octet-stream", **extra):
        return self.generic("PUT", path, data, content_type, **extra)

    def patch(self, path, data="", content_type="application/octet-stream", **extra):
        return self.generic("PATCH", path, data, content_type, **extra)

    def delete(self, path, data="", content_type="application/octet-stream", **extra):
        return self.generic("DELETE", path, data, content_type, **extra)

    def options(self, path, data="", content_type="application/octet-stream", **extra):
        return self.generic("OPTIONS", path, data, content_type, **extra)

    def _send(self, environ: dict, body: bytes) -> HttpResponse:
        headers = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").lower()] = value
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        if "CONTENT_LENGTH" in environ or body:
            headers["content-length"] = str(environ.get("CONTENT_LENGTH", len(body)))
        scope = SimpleNamespace(
            proto="http",
            method=environ["REQUEST_METHOD"],
            path=environ["PATH_INFO"],
            query_string=environ.get("QUERY_STRING", ""),
            headers=headers,
            server=f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}",
            client=f"{environ.get('REMOTE_ADDR', '127.0.0.1')}:50000",
            scheme=environ.get("wsgi.url_scheme", "http"),
            http_version="1.1",
        )
        proto = Proto(body)
        asyncio.run(self._gateway().__rsgi__(scope, proto))
        assert proto.answer is not None, "the gateway sent no answer"
        status, answer_headers, content = proto.answer
        response = HttpResponse(content, status=status)
        del response["Content-Type"]
        for name, value in answer_headers:
            response[name] = value
        response.json = lambda: json.loads(response.content)
        return response
