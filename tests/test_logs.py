"""Log lines: text by default, one JSON object per line with JOBS_LOG_FORMAT=json,
and the job, batch and worker on every line logged while a job runs."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobsite.logs import JobContextFilter, JsonFormatter, TextFormatter, job_log_context
from tests.django_process import environment, run_python

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger whose lines go to a string, through the same filter as the console's."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(JobContextFilter())
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def _json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_message_and_process(capture):
    logger, stream, handler = capture
    handler.setFormatter(JsonFormatter())

    logger.warning("Queue %s is %d messages deep", "jobs", 3)

    [line] = _json_lines(stream)
    assert line["level"] == "WARNING"
    assert line["logger"] == "tests.logs"
    assert line["message"] == "Queue jobs is 3 messages deep"
    assert line["process"] == os.getpid()
    assert line["process_name"] == "MainProcess"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert "job_id" not in line


def test_every_line_inside_a_job_context_carries_job_batch_and_worker(capture):
    logger, stream, handler = capture
    handler.setFormatter(JsonFormatter())

    with job_log_context(batch_id="batch-7"):
        logger.info("batch delivered")
        with job_log_context(job_id="01KB0000000000000000000000"):
            logger.info("photo fetched")
            logging.getLogger("tests.logs.deeper").error("any logger counts")
    logger.info("after the job")

    batch, job, deeper, after = _json_lines(stream)
    worker = f"-{os.getpid()}"
    assert batch["batch_id"] == "batch-7"
    assert "job_id" not in batch
    for line in (job, deeper):
        assert line["job_id"] == "01KB0000000000000000000000"
        assert line["batch_id"] == "batch-7"
        assert line["worker"].endswith(worker)
    assert deeper["logger"] == "tests.logs.deeper"
    assert not {"job_id", "batch_id", "worker"} & after.keys()


def test_a_thread_sees_only_its_own_job(capture):
    logger, stream, handler = capture
    handler.setFormatter(JsonFormatter())
    inside = threading.Event()
    logged = threading.Event()

    def other_thread():
        inside.wait(5)
        logger.info("other thread")
        logged.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with job_log_context(job_id="job-a"):
        inside.set()
        assert logged.wait(5)
    thread.join(5)

    [line] = _json_lines(stream)
    assert "job_id" not in line


def test_extra_fields_and_tracebacks_stay_on_one_line(capture):
    logger, stream, handler = capture
    handler.setFormatter(JsonFormatter())

    try:
        raise ValueError("bad\nphoto")
    except ValueError:
        logger.exception("The fetch failed", extra={"attempt": 2, "path": Path("/x")})

    assert len(stream.getvalue().splitlines()) == 1
    [line] = _json_lines(stream)
    assert line["attempt"] == 2
    assert line["path"] == "/x"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: bad\nphoto" in line["exception"]


def test_text_lines_outside_a_job_are_the_plain_format(capture):
    logger, stream, handler = capture
    handler.setFormatter(TextFormatter(TEXT_FORMAT))

    logger.info("Jobs is running")

    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO tests\.logs: Jobs is running\n",
        stream.getvalue(),
    )


def test_text_job_lines_end_with_the_job_context(capture):
    logger, stream, handler = capture
    handler.setFormatter(TextFormatter(TEXT_FORMAT))

    with job_log_context(job_id="job-a", batch_id="batch-1", worker="host-1"):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("Job failed")

    first, *traceback = stream.getvalue().splitlines()
    assert first.endswith(
        "ERROR tests.logs: Job failed job_id=job-a batch_id=batch-1 worker=host-1"
    )
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == "RuntimeError: boom"


# --- the LOGGING setting ----------------------------------------------------------------


def _log_a_line(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """A fresh Django process configured by ``env`` that logs one warning."""
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('jobs.tasks').warning('Photo source is slow')"
    )
    return run_python("-c", code, env=environment(tmp_path / "data", **env))


def test_json_log_format_writes_json_lines(tmp_path):
    result = _log_a_line(tmp_path, JOBS_LOG_FORMAT="json")

    assert result.returncode == 0, result.stderr
    [line] = [json.loads(text) for text in result.stderr.splitlines()]
    assert line["logger"] == "jobs.tasks"
    assert line["level"] == "WARNING"
    assert line["message"] == "Photo source is slow"


def test_text_is_the_default_log_format(tmp_path):
    result = _log_a_line(tmp_path)

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING jobs\.tasks: Photo source is slow\n",
        result.stderr,
    )


def test_it_stops_on_an_unknown_log_format(tmp_path):
    result = _log_a_line(tmp_path, JOBS_LOG_FORMAT="xml")

    assert result.returncode != 0
    assert "JOBS_LOG_FORMAT='xml' is not one of text, json." in result.stderr
