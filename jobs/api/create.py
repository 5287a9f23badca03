"""``POST /api/jobs``: every rule of a create request, in one function both servers call.

A create is the API's hot path, and most of its cost used to be the
framework around it (Django's request and middleware, DRF's request,
negotiation and checks: about a quarter of a millisecond of CPU per
request, as much as the create itself). :func:`handle_create` is the whole
request: the JSON-only rule (415), the per-client throttle (429), the body
(400), the service (admission, idempotency, the durable write) and the
mapping of every failure to its problem (:mod:`jobs.api.errors`). It is
called

- by the web server's gateway (:mod:`jobsite.rsgi`), which answers
  ``POST /api/jobs`` with it directly, without entering Django (see
  :class:`CreateEndpoint` for what the gateway adds: the Host check, the
  security headers, the metrics);
- by :meth:`jobs.api.views.JobViewSet.create`, so that Django (its test
  client, or any WSGI/ASGI server) answers a create with the same rules.

The tests of the create run against both (``tests/api_clients.py``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.urls import resolve
from django.utils.http import parse_header_parameters
from rest_framework import exceptions as drf

from jobs import metrics, services
from jobs.api.errors import problem_for_exception
from jobs.api.parsers import parse_json
from jobs.api.problems import problem_response
from jobs.api.serializers import requested_delay
from jobs.api.throttling import client_address, create_buckets
from jobsite.security import api_headers

JSON = "application/json"
CREATE_PATHS = frozenset({"/api/jobs", "/api/jobs/"})
# How many answers of the Host check a process remembers (see CreateEndpoint.host_allowed).
HOSTS_REMEMBERED = 64


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers, body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def of(cls, response: HttpResponse) -> Answer:
        return cls(response.status_code, list(response.items()), response.content)


@dataclass(frozen=True)
class CreateRequest:
    """What a create request carries that its answer depends on."""

    content_type: str | None
    body: bytes
    idempotency_key: str | None
    client: str


def handle_create(
    *,
    content_type: str | None,
    body: bytes,
    idempotency_key: str | None,
    client: str,
) -> Answer:
    """Answer one create request; never raises."""
    (answer,) = handle_creates([CreateRequest(content_type, body, idempotency_key, client)])
    return answer


def handle_creates(requests: Sequence[CreateRequest]) -> list[Answer]:
    """Answer create requests that arrived together, in order; never raises.

    Each request is checked on its own. Those without an Idempotency-Key
    are then created together (:func:`jobs.services.job_create_many`), so
    their durable writes share one round of flushes; a keyed create is
    made on its own, since it may have to wait for its key.
    """
    answers: dict[int, Answer] = {}
    batch: list[tuple[int, object]] = []
    for index, request in enumerate(requests):
        try:
            delay = _requested_delay(request)
            if request.idempotency_key is None:
                batch.append((index, delay))
                continue
            created = services.job_create(
                delay_seconds=delay, idempotency_key=request.idempotency_key
            )
        except Exception as exc:
            answers[index] = _refused(exc)
        else:
            answers[index] = _accepted(created)
    if batch:
        try:
            outcomes = services.job_create_many([delay for _, delay in batch])
        except Exception as exc:
            outcomes = [exc] * len(batch)
        for (index, _), outcome in zip(batch, outcomes, strict=True):
            answers[index] = (
                _refused(outcome) if isinstance(outcome, Exception) else _accepted(outcome)
            )
    return [answers[index] for index in range(len(requests))]


def _requested_delay(request: CreateRequest) -> object:
    """The request's ``delay_seconds``, unchecked, once its media type, throttle and body pass."""
    # The order of DRF's checks: the media type, then the throttle, then the body.
    media_type, params = parse_header_parameters(request.content_type or "")
    if media_type != JSON:
        # Why JSON only: see jobs.api.parsers.
        raise drf.UnsupportedMediaType(media_type or "(none)")
    buckets = create_buckets()
    if buckets is not None:
        wait = buckets.take(request.client)
        if wait:
            raise drf.Throttled(wait)
    body = request.body
    data = parse_json(body, params.get("charset") or "utf-8") if body else {}
    return requested_delay(data)


def _refused(exc: Exception) -> Answer:
    return Answer.of(problem_for_exception(exc))


def _accepted(created: services.Created) -> Answer:
    job = created.response["job"]
    headers = [
        ("Content-Type", JSON),
        ("Location", job["url"]),
        ("Retry-After", str(created.response["retry_after"])),
    ]
    if created.replayed:
        headers.append(("Idempotent-Replayed", "true"))
    # The bytes of json.dumps(job, separators=(",", ":"), ensure_ascii=False),
    # in a twentieth of the time (3.7 against 0.2 us).
    return Answer(202, headers, orjson.dumps(job))


# --- the gateway's side ---------------------------------------------------------


def _route() -> str:
    match = resolve("/api/jobs")
    return match.view_name


class CreateEndpoint:
    """``POST /api/jobs`` as the gateway serves it: a create answered without Django.

    Besides :func:`handle_create` it does what Django's middleware does for
    every API answer: the ``Host`` check (``ALLOWED_HOSTS``), the security
    headers (:func:`jobsite.security.api_headers`, the same set Django's
    middleware adds: a test compares them) and the request metrics. A
    request that needs more of Django (an https redirect) is left to it.
    """

    def __init__(self) -> None:
        self.route = _route()
        self.metrics = metrics.enabled()
        self.redirect_http = bool(settings.SECURE_SSL_REDIRECT)
        proxy = settings.SECURE_PROXY_SSL_HEADER
        self.proxy_ssl_header = proxy[0] if proxy else None
        # What the Host check answered, by what it looked at (see host_allowed).
        self._hosts: dict[tuple[Any, ...], bool] = {}

    def is_secure(self, environ: Mapping[str, Any]) -> bool:
        """Django's ``request.is_secure()``, from a WSGI environ."""
        if self.proxy_ssl_header is not None and self.proxy_ssl_header in environ:
            return environ[self.proxy_ssl_header].split(",")[0].strip() == "https"
        return environ.get("wsgi.url_scheme") == "https"

    def host_allowed(self, environ: dict[str, Any]) -> bool:
        """Django's ``ALLOWED_HOSTS`` check of a request, remembered for the headers it read.

        Django builds a request to answer it (4 % of the web's Python under load);
        the answer depends only on these headers and the settings (fixed
        for the life of the process). At most :data:`HOSTS_REMEMBERED`
        answers are kept, so a client sending a new Host each time makes
        the check cost what it did, not memory.
        """
        key = (
            environ.get("HTTP_HOST"),
            environ.get("HTTP_X_FORWARDED_HOST"),
            # Without a Host header, Django makes one of these.
            environ.get("SERVER_NAME"),
            environ.get("SERVER_PORT"),
            environ.get("HTTP_X_FORWARDED_PORT"),
            self.is_secure(environ),
        )
        allowed = self._hosts.get(key)
        if allowed is None:
            allowed = _host_allowed(environ)
            if len(self._hosts) < HOSTS_REMEMBERED:
                self._hosts[key] = allowed
        return allowed

    def serves(self, method: str, path: str, environ: Mapping[str, Any]) -> bool:
        """Whether this request is a create the gateway may answer itself."""
        if method != "POST" or path not in CREATE_PATHS:
            return False
        # Django redirects plain http to https when asked to: leave that to it.
        return not self.redirect_http or self.is_secure(environ)

    def many(self, requests: Sequence[tuple[dict[str, Any], bytes]]) -> list[Answer]:
        """Answer creates that arrived together (:func:`handle_creates`), in order."""
        started = time.perf_counter()
        answers: dict[int, Answer] = {}
        allowed: list[int] = []
        for index, (environ, _) in enumerate(requests):
            if self.host_allowed(environ):
                allowed.append(index)
            else:
                answers[index] = Answer.of(
                    problem_response(
                        400,
                        "Bad request",
                        "This server does not answer to that Host.",
                        code="bad_host",
                    )
                )
        handled = handle_creates(
            [
                CreateRequest(
                    content_type=requests[index][0].get("CONTENT_TYPE"),
                    body=requests[index][1],
                    idempotency_key=requests[index][0].get("HTTP_IDEMPOTENCY_KEY"),
                    client=client_address(requests[index][0]),
                )
                for index in allowed
            ]
        )
        answers.update(zip(allowed, handled, strict=True))
        elapsed = time.perf_counter() - started
        result = []
        for index, (environ, _) in enumerate(requests):
            answer = answers[index]
            answer.headers.extend(api_headers(secure=self.is_secure(environ)))
            result.append(answer)
        if self.metrics:
            metrics.http_requests(self.route, [answer.status for answer in result], elapsed)
        return result


def _host_allowed(meta: dict[str, Any]) -> bool:
    request = HttpRequest()
    request.META = meta
    try:
        request.get_host()
    except DisallowedHost:
        return False
    return True
