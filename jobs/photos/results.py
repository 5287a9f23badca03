"""What every photo source returns: batches of result dicts of one shape.

A source is anything with ``fetch_batch(count) -> PhotoBatch``; ``count``
runs from 1 to :data:`BATCH_SIZE`. A result dict has every key of
:data:`RESULT_KEYS`, always present and JSON-serialisable::

    photo_id, description, alt_description,
    urls {raw, full, regular, small, thumb}, width, height, color, blur_hash,
    photographer_name, photographer_username, photographer_url,
    photo_url, unsplash_url, source ("unsplash" or "demo")

``description`` falls back to ``alt_description``; the three links carry
``utm_source=<app name>&utm_medium=referral`` as Unsplash's guidelines ask.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Unsplash's upper bound for ``count`` on /photos/random. Every fetch asks for
# this many: one call then serves that many jobs, which is what lets a
# 50-calls-an-hour key serve far more than 50 jobs an hour.
BATCH_SIZE = 30

URL_SIZES = ("raw", "full", "regular", "small", "thumb")
RESULT_KEYS = (
    "photo_id",
    "description",
    "alt_description",
    "urls",
    "width",
    "height",
    "color",
    "blur_hash",
    "photographer_name",
    "photographer_username",
    "photographer_url",
    "photo_url",
    "unsplash_url",
    "source",
)


class PhotoBatch(list):
    """What a fetch returns: a list of result dicts, plus what the source said
    about its budget (``remaining`` and ``limit`` requests, ``None`` if unknown)."""

    def __init__(
        self,
        photos: Iterable[dict[str, Any]] = (),
        *,
        source: str | None = None,
        remaining: int | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(photos)
        self.source = source
        self.remaining = remaining
        self.limit = limit


# A source's ``fetch_batch``. A plain list is accepted too (no budget known).
Fetch = Callable[[int], list[dict[str, Any]]]


def check_count(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= BATCH_SIZE:
        raise ValueError(f"count must be an integer from 1 to {BATCH_SIZE}, not {count!r}")


def check_app_name(app_name: str) -> None:
    if not app_name:
        raise ValueError("app_name is required: Unsplash's referral links name the app")


def utm_link(url: str, app_name: str) -> str:
    """``url`` with the referral parameters Unsplash's guidelines ask for."""
    if url.startswith(("https://", "http://")) and "?" not in url and "#" not in url:
        # A page's address (every photo has two): nothing to keep or replace,
        # and a fifth of the cost of taking the address apart.
        return f"{url}?{_referral(app_name)}"
    return _utm_link_parsed(url, app_name)


@functools.lru_cache(maxsize=8)
def unsplash_link(app_name: str) -> str:
    """Unsplash's home page as every photo credits it, with the referral parameters."""
    return utm_link("https://unsplash.com/", app_name)


@functools.lru_cache(maxsize=8)
def _referral(app_name: str) -> str:
    return urlencode([("utm_source", app_name), ("utm_medium", "referral")])


def _utm_link_parsed(url: str, app_name: str) -> str:
    parts = urlsplit(url)
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key not in ("utm_source", "utm_medium")
    ]
    query += [("utm_source", app_name), ("utm_medium", "referral")]
    return urlunsplit(parts._replace(query=urlencode(query)))
