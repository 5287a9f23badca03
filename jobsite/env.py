"""Typed readers for settings from the environment.

Each refuses a bad value with ImproperlyConfigured naming the variable, what
it got and what it expects, so a typo stops the start-up with a clear message
instead of running on a silent fallback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# ASCII digits only: int() would also take "8_000" and non-ASCII digits.
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    return None if value is None else value.strip()


def envstr(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None or value == "" else value


def envbool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use true or false.")


def envint(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    if not _INTEGER.fullmatch(value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.")
    number = int(value)
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below its minimum of {minimum}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above its maximum of {maximum}.")
    return number


def envlist(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def envurl(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = envstr(name, default, environ)
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ImproperlyConfigured(f"{name}={value!r} is not an http(s) URL.")
    return value.rstrip("/")


def envpath(name: str, default: Path, environ: Mapping[str, str] | None = None) -> Path:
    value = _raw(name, environ)
    path = Path(value).expanduser() if value else default
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.exists() and not path.is_dir():
        raise ImproperlyConfigured(f"{name}={str(path)!r} exists and is not a directory.")
    return path


_REDIS_SCHEMES = {"redis", "rediss", "unix"}


def envredisurl(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A Redis URL (``redis://``, ``rediss://`` or ``unix://``), or None when unset.

    The message never repeats the value: a Redis URL may carry a password.
    """
    value = envstr(name, "", environ)
    if not value:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ImproperlyConfigured(f"{name} is not a URL; use redis://host:6379/0.") from None
    if parts.scheme not in _REDIS_SCHEMES:
        raise ImproperlyConfigured(
            f"{name} must start with redis://, rediss:// or unix:// "
            f"(it starts with {parts.scheme or 'no scheme'!r})."
        )
    if parts.scheme == "unix" and not parts.path:
        raise ImproperlyConfigured(f"{name} names no socket; use unix:///path/to/redis.sock.")
    if parts.scheme != "unix" and not parts.hostname:
        raise ImproperlyConfigured(f"{name} names no host; use redis://host:6379/0.")
    database = parts.path.lstrip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        raise ImproperlyConfigured(f"{name} names database {database!r}; use a number, as in /0.")
    return value
