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

from rest_framework import exceptions, parsers


class JsonParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                "JSON parse error - the document is nested too deeply."
            ) from None
