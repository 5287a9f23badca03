"""The request bodies the API accepts: JSON, and nothing else.

- ``JsonParser`` is DRF's only parser (``REST_FRAMEWORK``), for views that
  read ``request.data``. DRF's own turns a ``ValueError`` into a 400 but
  lets the ``RecursionError`` of a deeply nested document (about a
  thousand levels) escape as a 500.
- The one unsafe request of the API, the create, is refused with 415
  unless it says ``Content-Type: application/json``, even with an empty
  body (:func:`jobs.api.create.handle_create`). A browser lets any site
  send a POST without asking first only when its content type is a form's
  (``application/x-www-form-urlencoded``, ``multipart/form-data``,
  ``text/plain``) or when it has no body and no content type at all
  (``fetch(url, {method: "POST", mode: "no-cors"})``,
  ``navigator.sendBeacon(url)``); requiring the JSON type makes every
  cross-site create need a CORS preflight, which this API never grants.
"""

from __future__ import annotations

import json

from django.utils.http import parse_header_parameters
from rest_framework import exceptions, parsers


def _reject_constant(value: str):
    raise ValueError(f"{value} is not valid JSON")


def parse_json(body: bytes, charset: str = "utf-8") -> object:
    """A request body as strict JSON, with DRF's messages (``ParseError``, a 400)."""
    try:
        return json.loads(body.decode(charset), parse_constant=_reject_constant)
    except RecursionError:
        detail = "JSON parse error - the document is nested too deeply."
        raise exceptions.ParseError(detail) from None
    except (ValueError, LookupError) as exc:
        raise exceptions.ParseError(f"JSON parse error - {exc}") from None


class JsonParser(parsers.JSONParser):
    """DRF's parser for views that read ``request.data``: :func:`parse_json`."""

    def parse(self, stream, media_type=None, parser_context=None):
        _, params = parse_header_parameters(media_type or "")
        return parse_json(stream.read(), params.get("charset") or "utf-8")
