"""The django-q2 broker on files: where it keeps its messages, and what their files hold.

What every broker promises (due times, leases, dead letters, batches,
django-q2's own loop) is tested against this one and the Redis broker alike
in ``tests/contract/test_broker_contract.py``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import django
import pytest
from django.conf import settings

# django_q reads its settings when it is imported. The project's conftest
# provides them; on its own this module configures the minimum it needs.
if not settings.configured:
    settings.configure(
        SECRET_KEY="test-broker",
        INSTALLED_APPS=["django_q"],
        Q_CLUSTER={
            "name": "test",
            "broker_class": "filestore.broker.FileBroker",
            "retry": 60,
            "timeout": 30,
            "poll": 0.05,
        },
        JOBS_DATA_DIR=Path(tempfile.gettempdir()) / "filestore-broker-tests",
    )
    django.setup()

from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django_q.signing import SignedPackage

from filestore.broker import FileBroker

JOB_ID = "01JABCDEFGHJKMNPQRSTVWXYZ0"
RECORD_RUN = f"{__name__}.record_run"


def record_run(job_id: str) -> None:
    """A task function for scheduled messages (never run here)."""


@pytest.fixture(autouse=True)
def data_dir(tmp_path):
    with override_settings(JOBS_DATA_DIR=tmp_path):
        yield tmp_path


@pytest.fixture
def broker() -> FileBroker:
    return FileBroker(list_key="test")


def test_it_keeps_messages_under_the_data_dir_by_queue_name(broker, data_dir):
    broker.enqueue("task")

    assert broker.connection.root == data_dir / "queue" / "test"
    assert broker.info() == f"File queue {data_dir / 'queue' / 'test'}"


def test_ping_reports_whether_the_data_dir_is_writable(broker, data_dir):
    assert broker.ping() is True

    (data_dir / "tmp").rmdir()
    (data_dir / "tmp").write_text("not a directory")

    assert broker.ping() is False


def test_it_refuses_to_start_without_a_data_dir():
    with override_settings(JOBS_DATA_DIR=None), pytest.raises(ImproperlyConfigured):
        FileBroker(list_key="test")


def test_a_scheduled_message_is_a_few_bytes_naming_the_task_unsigned(broker, monkeypatch):
    def no_signing(*args, **kwargs):
        raise AssertionError("scheduling must not build or sign a django-q2 package")

    monkeypatch.setattr(SignedPackage, "dumps", no_signing)

    broker.schedule(RECORD_RUN, key=JOB_ID, due_at=time.time() + 60)

    [message] = (broker.connection.root / "ready").glob("*/*")
    assert message.name.endswith(f"_{JOB_ID}")
    assert json.loads(message.read_bytes()) == {"v": 1, "func": RECORD_RUN, "key": JOB_ID}
    assert message.stat().st_size < 100


def test_batch_messages_of_the_implied_task_are_empty_files_run_as_usual(data_dir):
    with override_settings(JOBS_QUEUE_IMPLIED_TASK=RECORD_RUN):
        broker = FileBroker(list_key="test")
        broker.schedule(RECORD_RUN, key=JOB_ID, due_at=time.time() - 1, batch=True)
        [message] = (broker.connection.root / "ready").glob("*/*")
        assert message.name.endswith(f"_{JOB_ID}") and message.stat().st_size == 0

        [(ack_id, package)] = broker.dequeue()

    task = SignedPackage.loads(package)
    assert (task["func"], task["args"]) == (RECORD_RUN, ([JOB_ID],))
    broker.acknowledge(ack_id)
    assert broker.counts()["leased"] == 0


def test_other_messages_keep_their_content_beside_the_implied_task(data_dir):
    other = "tests.test_broker.other_run"
    with override_settings(JOBS_QUEUE_IMPLIED_TASK=RECORD_RUN):
        broker = FileBroker(list_key="test")
        broker.schedule(RECORD_RUN, key=JOB_ID, due_at=time.time() + 60)  # not a batch
        broker.schedule(other, key=JOB_ID, due_at=time.time() + 60, batch=True)

    contents = sorted(
        json.loads(path.read_bytes())["func"]
        for path in (broker.connection.root / "ready").glob("*/*")
    )
    assert contents == sorted([RECORD_RUN, other])


@pytest.mark.parametrize("task", ["", "no_module", "a.b-c", 42])
def test_it_refuses_an_implied_task_that_is_not_a_function_path(task):
    with (
        override_settings(JOBS_QUEUE_IMPLIED_TASK=task),
        pytest.raises(ImproperlyConfigured, match="JOBS_QUEUE_IMPLIED_TASK"),
    ):
        FileBroker(list_key="test")


def test_the_project_queues_its_job_runs_as_empty_files():
    from jobs.queueing import RUN_JOBS
    from jobsite import settings as project_settings

    assert project_settings.JOBS_QUEUE_IMPLIED_TASK == RUN_JOBS


@pytest.mark.parametrize("key", [JOB_ID, "0" * 26, "Z" * 26])
@pytest.mark.parametrize("func", [RECORD_RUN, "a.b" + "0" * 26])
def test_an_implied_payload_is_the_batch_message_of_its_task(key, func):
    from storage.scheduled_tasks import ScheduledTask, implied_payloads

    payload = implied_payloads(func)(key)

    assert payload == ScheduledTask(func=func, key=key, batch=True).encode()
    assert ScheduledTask.decode(payload) == ScheduledTask(func=func, key=key, batch=True)
