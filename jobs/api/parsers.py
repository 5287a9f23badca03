"""The request bodies the API accepts: JSON, and nothing else.

Two rules, both configured in ``REST_FRAMEWORK``:

- ``JsonParser`` is the only parser. DRF's own turns a ``ValueError`` into
  a 400 but lets the ``RecursionError`` of a deeply nested document (about a
  thousand levels) escape as a 500.
- ``RequestsSendJson`` refuses, with 415, an unsafe request that a view
  handles unless it says ``Content-Type: application/json``, even with an
  empty body. A browser lets any site send a POST without asking first only
  when its content type is a form's (``application/x-www-form-urlencoded``,
  ``multipart/form-data``, ``text/plain``) or when it has no body and no
  content type at all (``fetch(url, {method: "POST", mode: "no-cors"})``,
  ``navigator.sendBeacon(url)``); requiring the JSON type makes every
  cross-site create need a CORS preflight, which this API never grants.
"""

from __future__ import annotations

from django.utils.http import parse_header_parameters
from rest_framework import exceptions, parsers, permissions

JSON = "application/json"


class JsonParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                "JSON parse error - the document is nested too deeply."
            ) from None


class RequestsSendJson(permissions.BasePermission):
    """Unsafe methods a view handles must come with ``Content-Type: application/json``."""

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        # A method the view does not handle gets its 405 (with Allow), not a 415.
        if getattr(view, request.method.lower(), None) is None:
            return True
        media_type, _ = parse_header_parameters(request.META.get("CONTENT_TYPE") or "")
        if media_type != JSON:
            raise exceptions.UnsupportedMediaType(media_type or "(none)")
        return True
