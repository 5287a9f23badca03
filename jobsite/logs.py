"""Log lines: text for a terminal (the default), or one JSON object per line.

``JOBS_LOG_FORMAT=json`` gives every line ``time``, ``level``, ``logger``,
``message``, ``process`` and ``process_name``, plus whatever the call
passed in ``extra=``. Code that runs a job wraps it in
:func:`job_log_context`; every line logged inside, by any logger, then
carries ``job_id``, ``batch_id`` and ``worker`` (in text, appended as
``key=value``), without each call having to pass them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType

CONTEXT_FIELDS = ("job_id", "batch_id", "worker")

# A context variable, not a thread-local: each thread and each asyncio task
# sees only the job it runs.
_context: ContextVar[Mapping[str, str]] = ContextVar(
    "job_log_context", default=MappingProxyType({})
)

# Attributes every LogRecord has; anything else on a record came from extra=.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__
) | {"message", "asctime", "taskName"}


def worker_name() -> str:
    """``<host>-<pid>``: the same name the worker heartbeat files use."""
    return f"{socket.gethostname()}-{os.getpid()}"


@contextmanager
def job_log_context(
    *, job_id: str | None = None, batch_id: str | None = None, worker: str | None = None
) -> Iterator[None]:
    """Tag every log line inside with the job, its batch and the worker running it.

    Nested contexts add to the outer one (a batch context, then one per job).
    """
    fields = dict(_context.get())
    for name, value in (("job_id", job_id), ("batch_id", batch_id), ("worker", worker)):
        if value is not None:
            fields[name] = str(value)
    fields.setdefault("worker", worker_name())
    token = _context.set(MappingProxyType(fields))
    try:
        yield
    finally:
        _context.reset(token)


class JobContextFilter(logging.Filter):
    """Copies the current job context onto each record (values passed in extra= win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """The plain format, with `` job_id=... batch_id=... worker=...`` on job lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)
        )
        if not context:
            return line
        # After the message's first line, so a traceback below it stays intact.
        first, newline, rest = line.partition("\n")
        return f"{first} {context}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a traceback is a field, never extra lines."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "process_name": record.processName,
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                document[name] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra= value such as Django's request object becomes
        # its repr instead of losing the whole line.
        return json.dumps(document, default=str, ensure_ascii=False)
