"""Random food photos from the Unsplash API (see UNSPLASH.md for the facts it relies on).

One request per batch: ``GET {api_url}/photos/random?topics=<Food & Drink>&count=N``.
What an answer means is decided here, once:

- ``429``, a ``403`` whose body says ``Rate Limit Exceeded``, or any refusal
  but ``400``/``401``/``404`` while ``X-Ratelimit-Remaining`` is ``0``:
  :class:`RateLimited` (the pool then closes its gate, see :mod:`jobs.photos.gate`);
- ``401``, any other ``403``, ``400``, another ``404``: :class:`PermanentPhotoError`,
  with a message saying what to fix;
- network errors, timeouts, ``5xx``, ``No photos found.``, a malformed body:
  :class:`TransientPhotoError`.

The client never retries by itself: the job task does, with backoff, and
the pool keeps every process from calling a rate-limited API.
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import os
import re
import time
from typing import Any

import orjson
import requests

from jobs.photos.errors import (
    PermanentPhotoError,
    PhotoSourceError,
    RateLimited,
    TransientPhotoError,
)
from jobs.photos.results import (
    URL_SIZES,
    PhotoBatch,
    check_app_name,
    check_count,
    unsplash_link,
    utm_link,
)

FOOD_AND_DRINK_TOPIC = "xjPR4hlkBGA"


def _session(api_url: str) -> requests.Session:
    """A session that reads the environment's proxy and CA settings once, not at every call.

    With ``trust_env`` on, requests looks them up (and ``~/.netrc``) for
    each request: a tenth of a call's CPU, for settings a process does not
    change. They are read here as it would read them (``HTTPS_PROXY``,
    ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``...). A ``.netrc`` entry for the API's
    host is ignored: the key goes in the Authorization header. Cookies are
    neither kept nor sent: the API authenticates by that header alone, and
    a request prepared once is sent unchanged (see ``UnsplashSource._get``).
    """
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    session.proxies.update(requests.utils.get_environ_proxies(api_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


class UnsplashSource:
    """Random food photos from the Unsplash API, one request per batch.

    ``timeout`` is ``(connect, read)`` seconds and bounds every call.
    ``last_rate_limit`` is ``{"remaining": int | None, "limit": int | None}``
    from the last answer's ``X-Ratelimit-*`` headers (``None`` before any).
    """

    name = "unsplash"

    def __init__(
        self,
        *,
        api_url: str,
        access_key: str,
        app_name: str,
        timeout: tuple[float, float] = (3.05, 10),
        session: requests.Session | None = None,
        topic_id: str = FOOD_AND_DRINK_TOPIC,
    ) -> None:
        if not access_key:
            raise ValueError("access_key is required; without one, use DemoSource")
        check_app_name(app_name)
        self.api_url = api_url.rstrip("/")
        self.access_key = access_key
        self.app_name = app_name
        self.timeout = timeout
        self.session = session if session is not None else _session(self.api_url)
        self.topic_id = topic_id
        self.last_rate_limit: dict[str, int | None] | None = None
        # (path, params) -> the request, prepared once: see _get.
        self._prepared: dict[tuple[str, tuple[tuple[str, Any], ...]], requests.PreparedRequest] = {}

    def fetch_batch(self, count: int) -> PhotoBatch:
        """Up to ``count`` random photos, as the API returned them (it may return fewer,
        even none, or one twice: the pool keeps the distinct ones and treats none
        as a transient failure, for every source)."""
        check_count(count)
        response = self._get(
            "/photos/random",
            {"topics": self.topic_id, "count": count, "content_filter": "high"},
        )
        photos = [self._result(item) for item in _photo_objects(response)]
        rate_limit = self.last_rate_limit or {}
        return PhotoBatch(
            photos,
            source=self.name,
            remaining=rate_limit.get("remaining"),
            limit=rate_limit.get("limit"),
        )

    def _get(self, path: str, params: dict[str, Any]) -> requests.Response:
        try:
            response = self.session.send(
                self._request(path, params), timeout=self.timeout, allow_redirects=True
            )
        except requests.ConnectTimeout as exc:
            raise TransientPhotoError(
                "unsplash_timeout",
                f"Could not connect to Unsplash within {self.timeout[0]:g} seconds.",
            ) from exc
        except requests.Timeout as exc:
            raise TransientPhotoError(
                "unsplash_timeout", f"Unsplash did not answer within {self.timeout[1]:g} seconds."
            ) from exc
        except requests.RequestException as exc:
            raise TransientPhotoError(
                "unsplash_unreachable",
                "Could not reach Unsplash (the connection failed or was cut off).",
            ) from exc
        remaining = _int_header(response, "X-Ratelimit-Remaining")
        limit = _int_header(response, "X-Ratelimit-Limit")
        if remaining is not None or limit is not None:
            self.last_rate_limit = {"remaining": remaining, "limit": limit}
        if 200 <= response.status_code < 300:
            return response
        raise _status_error(response, remaining)

    def _request(self, path: str, params: dict[str, Any]) -> requests.PreparedRequest:
        """The GET of ``path`` with ``params``, prepared once and sent as it is every time.

        Every call of a source asks the same thing (the count of a batch
        seldom changes; there are thirty at most), and preparing it
        (encoding the query, merging the session's headers, settings and
        cookies) took a third of the request's CPU in the process (0.57
        against 0.38 ms a call), for the same bytes. ``Session.send`` still
        applies the session's proxies and TLS settings, and follows
        redirects as ``Session.get`` does; sending changes nothing in the
        request.
        """
        key = (path, tuple(params.items()))
        prepared = self._prepared.get(key)
        if prepared is None:
            headers = {
                "Authorization": f"Client-ID {self.access_key}",
                "Accept-Version": "v1",
                # The API sits behind a CDN; without this a "random" photo can be a cached one.
                "Cache-Control": "no-cache",
            }
            request = requests.Request("GET", self.api_url + path, params=params, headers=headers)
            prepared = self._prepared[key] = self.session.prepare_request(request)
        return prepared

    def _result(self, item: Any) -> dict[str, Any]:
        photo = _Fields(item, "photo")
        user = photo.object("user")
        urls = photo.object("urls")
        description = photo.text("description", nullable=True)
        alt_description = photo.text("alt_description", nullable=True)
        username = user.text("username")
        return {
            "photo_id": photo.text("id"),
            "description": description or alt_description or None,
            "alt_description": alt_description,
            "urls": {size: urls.url(size) for size in URL_SIZES},
            "width": photo.dimension("width"),
            "height": photo.dimension("height"),
            "color": photo.color("color"),
            "blur_hash": photo.text("blur_hash", nullable=True),
            "photographer_name": user.text("name", nullable=True) or username,
            "photographer_username": username,
            "photographer_url": utm_link(user.object("links").url("html"), self.app_name),
            "photo_url": utm_link(photo.object("links").url("html"), self.app_name),
            "unsplash_url": unsplash_link(self.app_name),
            "source": self.name,
        }


def _photo_objects(response: requests.Response) -> list[Any]:
    """The body as a list: one photo object without ``count``, an array with it."""
    try:
        # orjson: the answer is UTF-8 JSON (anything else is malformed here),
        # parsed in half the time of the standard library's decoder.
        body = orjson.loads(response.content)
    except ValueError as exc:
        raise _malformed("its answer is not valid JSON") from exc
    if isinstance(body, dict):
        return [body]
    if isinstance(body, list):
        return body
    raise _malformed("its answer is neither a photo nor a list of photos")


def _status_error(response: requests.Response, remaining: int | None) -> PhotoSourceError:
    status = response.status_code
    detail = _error_detail(response)
    said = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    if (
        status == 429
        or (status == 403 and "rate limit exceeded" in response.text.lower())
        or (remaining == 0 and status not in (400, 401, 404))
    ):
        return RateLimited(
            "unsplash_rate_limited",
            f"Unsplash's hourly request limit is used up ({said}); "
            "photos will be fetched again once it resets.",
            retry_after=_retry_after(response),
        )
    if status == 401:
        return PermanentPhotoError(
            "unsplash_unauthorized",
            f"Unsplash rejected the access key ({said}). The UNSPLASH_ACCESS_KEY is invalid "
            "or has been revoked: set a valid access key and restart the worker.",
        )
    if status == 403:
        return PermanentPhotoError(
            "unsplash_forbidden",
            f"Unsplash refused the request ({said}): the application behind "
            "UNSPLASH_ACCESS_KEY lacks permission for it.",
        )
    if status == 404 and "no photos found" in detail.lower():
        return TransientPhotoError(
            "unsplash_empty", f"Unsplash found no photos ({said}); trying again later."
        )
    if status == 400:
        return PermanentPhotoError(
            "unsplash_bad_request",
            f"Unsplash rejected the request as invalid ({said}): check the photo source "
            "configuration (UNSPLASH_API_URL and the topic).",
        )
    if status == 404:
        return PermanentPhotoError(
            "unsplash_not_found",
            f"Unsplash has no such address ({said}): check UNSPLASH_API_URL.",
        )
    if status >= 500:
        return TransientPhotoError(
            "unsplash_unavailable",
            f"Unsplash is having trouble ({said}); trying again later.",
            retry_after=_retry_after(response),
        )
    if 400 <= status < 500:
        return PermanentPhotoError(
            "unsplash_rejected",
            f"Unsplash rejected the request ({said}): check the photo source configuration.",
        )
    return TransientPhotoError(
        "unsplash_unexpected", f"Unsplash gave an unexpected answer ({said}); trying again later."
    )


def _error_detail(response: requests.Response) -> str:
    """Unsplash's own words: ``{"errors": [...]}`` joined, or a short plain-text body."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:200]
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return "; ".join(str(error) for error in body["errors"])[:200]
    return ""


def _int_header(response: requests.Response, name: str) -> int | None:
    try:
        return int(response.headers[name])
    except (KeyError, ValueError):
        return None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def _malformed(what: str) -> TransientPhotoError:
    return TransientPhotoError(
        "unsplash_malformed", f"Unsplash sent a malformed response ({what}); trying again later."
    )


_COLOR = re.compile(r"^#[0-9a-fA-F]{3,8}$")
_WEB_SCHEMES = ("http", "https")


class _Fields:
    """Typed access to one JSON object; a missing or ill-typed field is a malformed answer.

    Only the documented fields the result uses are read; the rest is ignored.
    """

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _malformed(f"`{path}` is not an object")
        self.value = value
        self.path = path

    def _bad(self, key: str, expected: str) -> TransientPhotoError:
        return _malformed(f"`{self.path}.{key}` is missing or not {expected}")

    def object(self, key: str) -> _Fields:
        if not isinstance(self.value.get(key), dict):
            raise self._bad(key, "an object")
        return _Fields(self.value[key], f"{self.path}.{key}")

    def text(self, key: str, *, nullable: bool = False) -> str | None:
        value = self.value.get(key)
        if value is None and nullable and key in self.value:
            return None
        if not isinstance(value, str) or (not nullable and not value):
            raise self._bad(key, "a string")
        return value

    def url(self, key: str) -> str:
        # These links end up in the page as href/src: only web addresses pass.
        value = self.value.get(key)
        # The scheme as written first, not as urlsplit reads it (which skips
        # leading blanks and drops tabs and newlines): stricter, and cheaper.
        if not isinstance(value, str) or value.partition(":")[0].lower() not in _WEB_SCHEMES:
            raise self._bad(key, "an http(s) URL")
        return value

    def dimension(self, key: str) -> int:
        value = self.value.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self._bad(key, "a positive integer")
        return value

    def color(self, key: str) -> str | None:
        value = self.text(key, nullable=True)
        if value is not None and not _COLOR.match(value):
            raise self._bad(key, "a hex colour")
        return value
