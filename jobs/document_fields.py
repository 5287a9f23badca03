"""Reading the fields of a stored job document, refusing what is not one.

A job's file holds a JSON document (:meth:`jobs.model.Job.to_document`)
whose ``format`` says which version wrote it; documents written before the
field existed are format 1 and still load. Any field of the wrong type, or
a timestamp that is not one, makes the document invalid: the repository
then quarantines the file rather than let one bad job break a page or a
recovery pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobs import clock

DOCUMENT_FORMAT = 2


class InvalidDocument(ValueError):
    """A stored document that is not a job of any known format."""


def check_format(document: object) -> None:
    if not isinstance(document, Mapping):
        raise InvalidDocument("a job document is a JSON object")
    version = document.get("format", 1)
    if version not in (1, DOCUMENT_FORMAT):
        raise InvalidDocument(f"unknown document format {version!r}")


def text(document: Mapping[str, Any], key: str, *, required: bool = False) -> Any:
    value = document.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidDocument(f"{key} must be a string, not {value!r}"[:200])
    return value


def timestamp(document: Mapping[str, Any], key: str, *, required: bool = False) -> Any:
    value = text(document, key, required=required)
    if value is not None:
        try:
            clock.from_iso(value)
        except ValueError:
            raise InvalidDocument(f"{key} is not a timestamp: {value!r}"[:200]) from None
    return value


def integer(document: Mapping[str, Any], key: str, *, default: int | None = None) -> int:
    value = document.get(key, default)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidDocument(f"{key} must be an integer, not {value!r}"[:200])
    return value
