"""Creates that arrive together are made together: one batch of writes, two flushes.

The web server's gateway hands the creates waiting for a thread to it as
one batch (:mod:`jobsite.rsgi`); :func:`jobs.api.create.handle_creates`
checks each, and the service stores the admitted ones with one
:meth:`~filestore.repository.JobRepository.create_many`. Each create keeps
its own answer: a refusal in the batch refuses that create only.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from filestore import atomic
from filestore.ids import new_id
from filestore.repository import JobNotFound, JobRepository
from jobs import admission, events, services, store
from jobs.api.create import CreateEndpoint, CreateRequest, handle_creates
from jobs.errors import InvalidInput
from jobs.model import STATUSES
from jobsite import rsgi
from tests.api_clients import Proto

CRASHED = 17


@pytest.fixture(autouse=True)
def _reset():
    admission.reset()
    yield
    atomic.hooks.reset()
    admission.reset()


def _document(job_id: str | None = None) -> dict:
    return {"id": job_id or new_id(), "status": "pending", "attempts": 0, "result": None}


def _repository(root: Path) -> JobRepository:
    repository = JobRepository(root, statuses=STATUSES)
    repository.setup()
    return repository


# --- the repository ----------------------------------------------------------


def test_create_many_stores_every_job_with_two_flushes(tmp_path):
    repository = _repository(tmp_path / "data")
    documents = [_document() for _ in range(20)]

    stored = repository.create_many(documents)

    assert stored == [{**document, "revision": 1} for document in documents]
    assert repository._committer.flushes == 2
    for document in documents:
        assert repository.get(document["id"]) == {**document, "revision": 1}
    assert list(repository.tmp_dir.iterdir()) == []


def test_create_many_leaves_a_taken_id_alone_and_stores_the_others(tmp_path):
    repository = _repository(tmp_path / "data")
    taken = repository.create({**_document(), "attempts": 5})
    fresh = _document()

    stored = repository.create_many([_document(taken["id"]), fresh])

    assert stored == [None, {**fresh, "revision": 1}]
    assert repository.get(taken["id"]) == taken
    assert list(repository.tmp_dir.iterdir()) == []


def test_create_many_writes_again_into_a_leaf_removed_meanwhile(tmp_path):
    repository = _repository(tmp_path / "data")
    documents = [_document() for _ in range(3)]
    leaf = repository.leaf_dir(documents[1]["id"])
    removed = []

    def remove_the_leaf_once(step: str, path: str) -> None:
        # The leaf is emptied and removed (as recovery does) after the temp
        # files are written, before the first link into it.
        if step == "link" and not removed:
            for name in os.listdir(leaf):
                os.unlink(leaf / name)
            leaf.rmdir()
            removed.append(path)

    atomic.hooks.before = remove_the_leaf_once
    stored = repository.create_many(documents)
    atomic.hooks.reset()

    assert removed
    assert stored == [{**document, "revision": 1} for document in documents]
    for document in documents:
        assert repository.get(document["id"])["id"] == document["id"]


@pytest.mark.parametrize("mode", ["dies", "fails"])
def test_a_crash_at_any_step_of_create_many_leaves_each_job_whole_or_absent(tmp_path, mode):
    documents = [_document() for _ in range(3)]
    steps: list[tuple[str, str]] = []
    clean = _repository(tmp_path / "clean")
    atomic.hooks.before = lambda step, path: steps.append((step, path))
    clean.create_many(documents)
    atomic.hooks.reset()
    assert {step for step, _ in steps} >= {"write", "fsync", "link", "fsync_dir"}

    for stop, (step, path) in enumerate(steps):
        where = f"stopped before step {stop} ({step} {path})"
        root = tmp_path / f"{mode}-{stop}"
        repository = _repository(root)
        count = 0

        def hook(step: str, path: str, stop=stop) -> None:
            nonlocal count
            count += 1
            if count - 1 == stop:
                if mode == "dies":
                    os._exit(CRASHED)
                raise OSError(errno.EIO, f"injected failure before {step}")

        if mode == "fails":
            atomic.hooks.before = hook
            with pytest.raises(OSError, match="injected failure"):
                repository.create_many(documents)
            atomic.hooks.reset()
            assert list(repository.tmp_dir.iterdir()) == [], f"{where}: temp files left"
        else:
            pid = os.fork()
            if pid == 0:
                try:
                    atomic.hooks.before = hook
                    repository.create_many(documents)
                finally:
                    os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == CRASHED, where

        after = _repository(root)  # a fresh process's view
        after.recover()
        linked = {Path(path).name for name, path in steps[:stop] if name == "link"}
        for document in documents:
            if f"{document['id']}_pending.json" in linked:
                assert after.get(document["id"]) == {**document, "revision": 1}, where
            else:
                with pytest.raises(JobNotFound):
                    after.get(document["id"])
        assert list(after.tmp_dir.iterdir()) == [], where
        assert list(after.quarantine_dir.iterdir()) == [], where


# --- the service -------------------------------------------------------------


def test_the_service_refuses_a_bad_delay_alone_and_stores_the_rest_with_two_flushes():
    repository = store.repository()
    flushes = repository._committer.flushes
    position = events.log().latest_id()

    outcomes = services.job_create_many([5, "ten", None, 7, 300])

    assert isinstance(outcomes[1], InvalidInput)
    assert isinstance(outcomes[3], InvalidInput)  # not a multiple of the step
    created = [outcomes[0], outcomes[2], outcomes[4]]
    assert all(isinstance(outcome, services.Created) for outcome in created)
    assert repository._committer.flushes - flushes == 2
    for outcome in created:
        job = repository.get(outcome.job_id)
        assert job.status == "pending"
        assert [message.due_at for message in store.broker().find(job.id)] == [
            pytest.approx(job.due_at, abs=0.001)
        ]
    assert outcomes[0].job["delay_seconds"] == 5
    assert outcomes[4].job["delay_seconds"] == 300
    published, _ = events.log().read_after(position)
    assert [event["job"]["id"] for _, event in published] == [o.job_id for o in created]


def test_the_service_queues_a_batchs_runs_with_one_call_to_the_broker(monkeypatch):
    calls = []
    schedule_many = store.broker().schedule_many

    def counted(func, runs, **options):
        calls.append(list(runs))
        return schedule_many(func, runs, **options)

    monkeypatch.setattr(store.broker(), "schedule_many", counted)

    outcomes = services.job_create_many([5, 10, 300])

    jobs = [store.repository().get(outcome.job_id) for outcome in outcomes]
    assert calls == [[(job.id, job.due_at) for job in jobs]]


def test_a_batch_the_queue_refuses_is_still_created_and_recovery_queues_every_job(
    monkeypatch, caplog
):
    from jobs.recovery import recover_jobs

    def down(func, runs, **options):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store.broker(), "schedule_many", down)
    outcomes = services.job_create_many([5, 10])
    monkeypatch.undo()

    assert all(isinstance(outcome, services.Created) for outcome in outcomes)
    ids = [outcome.job_id for outcome in outcomes]
    assert all(store.broker().find(job_id) == [] for job_id in ids)
    assert "Could not queue 2 jobs" in caplog.text
    assert sorted(recover_jobs(grace=0).requeued) == sorted(ids)
    assert all(len(store.broker().find(job_id)) == 1 for job_id in ids)


def test_the_service_admits_each_create_of_a_batch_on_its_own(settings):
    settings.JOBS_MAX_DUE_PER_SECOND = 3

    outcomes = services.job_create_many([60] * 5)

    kinds = [type(outcome).__name__ for outcome in outcomes]
    assert kinds == ["Created"] * 3 + ["Overloaded"] * 2


def test_a_batch_whose_writes_fail_refuses_every_create_in_it(monkeypatch):
    def full(items):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.repository(), "create_many", full)
    requests = [CreateRequest("application/json", b"{}", None, "10.0.0.1") for _ in range(3)]

    answers = handle_creates(requests)

    assert [answer.status for answer in answers] == [503, 503, 503]
    assert {json.loads(answer.body)["type"] for answer in answers} == {
        "/api/problems/storage_unavailable"
    }


# --- the gateway -------------------------------------------------------------


def _scope(body: bytes, **headers: str) -> SimpleNamespace:
    return SimpleNamespace(
        proto="http",
        method="POST",
        path="/api/jobs",
        query_string="",
        headers={
            "host": "localhost",
            "content-type": "application/json",
            "content-length": str(len(body)),
            **headers,
        },
        server="127.0.0.1:8000",
        client="127.0.0.1:50000",
        scheme="http",
        http_version="1.1",
    )


def test_the_gateway_answers_the_creates_that_waited_as_one_batch(monkeypatch):
    monkeypatch.setattr(rsgi, "CREATE_BATCHES", 1)
    endpoint = CreateEndpoint()
    sizes: list[int] = []
    release = threading.Event()
    many = endpoint.many

    def counted(requests):
        sizes.append(len(requests))
        if len(sizes) == 1:
            release.wait(10)  # the first batch runs while the others arrive
        return many(requests)

    endpoint.many = counted
    gateway = rsgi.WSGIGateway(
        lambda environ, start: [], threads=4, max_body_bytes=4096, create=endpoint
    )
    flushes = store.repository()._committer.flushes
    requests = [
        (b'{"delay_seconds": 5}', {}),
        *[(b'{"delay_seconds": 10}', {}) for _ in range(8)],
        (b'{"delay_seconds": 15}', {"idempotency-key": "batch-key-1"}),
        (b"{}", {"content-type": "text/plain"}),
        (b'{"delay_seconds": 10', {}),
        (b'{"delay_seconds": 10}', {"host": "elsewhere.example"}),
    ]

    async def scenario():
        protos = [Proto(body) for body, _ in requests]
        first = asyncio.ensure_future(
            gateway.__rsgi__(_scope(requests[0][0], **requests[0][1]), protos[0])
        )
        while not sizes:
            await asyncio.sleep(0.001)
        rest = [
            asyncio.ensure_future(gateway.__rsgi__(_scope(body, **headers), proto))
            for (body, headers), proto in zip(requests[1:], protos[1:], strict=True)
        ]
        while len(gateway.creates) < len(rest):
            await asyncio.sleep(0.001)
        release.set()
        await asyncio.gather(first, *rest)
        return protos

    protos = asyncio.run(scenario())

    assert sizes == [1, len(requests) - 1]
    statuses = [[status for status, _, _ in proto.answers] for proto in protos]
    assert statuses == [[202]] * 10 + [[415], [400], [400]]
    bodies = [json.loads(proto.answers[0][2]) for proto in protos]
    assert bodies[10]["type"] == "/api/problems/unsupported_media_type"
    assert bodies[12]["type"] == "/api/problems/bad_host"
    ids = [body["id"] for body in bodies[:10]]
    assert len(set(ids)) == 10
    assert [body["delay_seconds"] for body in bodies[:10]] == [5] + [10] * 8 + [15]
    for job_id in ids:
        assert store.repository().get(job_id).status == "pending"
    # The first create, the eight without a key, the keyed one: two flushes each.
    assert store.repository()._committer.flushes - flushes == 2 + 2 + 2
    headers = dict(protos[1].answers[0][1])
    assert headers["Location"] == f"/api/jobs/{ids[1]}"
    assert "X-Content-Type-Options" in headers
    assert gateway.creates == [] and gateway.create_batches == 0 and gateway.in_flight == 0


def _gathering_gateway(gather: float) -> tuple[rsgi.WSGIGateway, list[int]]:
    endpoint = CreateEndpoint()
    sizes: list[int] = []
    many = endpoint.many

    def counted(requests):
        sizes.append(len(requests))
        return many(requests)

    endpoint.many = counted
    gateway = rsgi.WSGIGateway(
        lambda environ, start: [],
        threads=4,
        max_body_bytes=4096,
        create=endpoint,
        gather_seconds=gather,
    )
    return gateway, sizes


async def _timed_create(gateway: rsgi.WSGIGateway, connection: int) -> tuple[Proto, float]:
    body = b'{"delay_seconds": 5}'
    scope = _scope(body)
    scope.client = f"127.0.0.1:{50000 + connection}"
    proto = Proto(body)
    await gateway.__rsgi__(scope, proto)
    return proto, asyncio.get_running_loop().time()


def test_a_create_soon_after_another_waits_for_company_and_a_lone_one_does_not():
    gather = 0.2
    gateway, sizes = _gathering_gateway(gather)

    async def scenario():
        loop = asyncio.get_running_loop()
        # Five connections were active lately.
        for connection in range(5):
            gateway._active[f"127.0.0.1:{50000 + connection}"] = loop.time()
        # The first create after a quiet gap is handed over at once.
        started = loop.time()
        (first, done) = await _timed_create(gateway, 0)
        alone = done - started
        # Two more right after it: the first of them waits for company, the other joins.
        started = loop.time()
        pair = await asyncio.gather(_timed_create(gateway, 1), _timed_create(gateway, 2))
        held = min(done for _, done in pair) - started
        # After a gap longer than the window, a lone create waits for nothing again.
        await asyncio.sleep(gather * 1.5)
        started = loop.time()
        (last, done) = await _timed_create(gateway, 3)
        protos = [first, *(proto for proto, _ in pair), last]
        return protos, alone, held, done - started

    protos, alone, held, last = asyncio.run(scenario())

    assert sizes == [1, 2, 1]
    assert [proto.answers[0][0] for proto in protos] == [202] * 4
    assert held >= gather * 0.9
    assert alone < gather and last < gather
    assert gateway._gather_timer is None and gateway.creates == []
    assert gateway._running_creates == 0


def test_creates_stop_waiting_once_every_active_connection_has_one_in():
    """A client that sends its next create only after an answer (here, three
    connections in a loop, or one script) never waits for company."""
    gather = 0.5

    async def loop_of(gateway, connection: int, rounds: int) -> list[float]:
        waits = []
        for _ in range(rounds):
            started = asyncio.get_running_loop().time()
            proto, done = await _timed_create(gateway, connection)
            assert proto.answers[0][0] == 202
            waits.append(done - started)
        return waits

    async def scenario():
        gateway, counted = _gathering_gateway(gather)
        alone = await loop_of(gateway, 9, 3)
        assert counted == [1, 1, 1]
        gateway, sizes = _gathering_gateway(gather)
        together = await asyncio.gather(
            *(loop_of(gateway, connection, 4) for connection in range(3))
        )
        # A connection that stopped still counts as active for a while: the
        # last creates of the others may wait for it once. Until then, none waits.
        return alone, [wait for waits in together for wait in waits[:-1]], sizes

    alone, together, sizes = asyncio.run(scenario())

    assert max(alone) < gather / 2
    assert max(together) < gather / 2
    assert sum(sizes) == 12


def test_the_gateway_remembers_host_checks_but_only_so_many(settings, monkeypatch):
    from jobs.api import create

    settings.ALLOWED_HOSTS = ["jobs.example"]
    monkeypatch.setattr(create, "HOSTS_REMEMBERED", 3)
    endpoint = CreateEndpoint()
    checked: list[str] = []
    check = create._host_allowed

    def counted(environ):
        checked.append(environ["HTTP_HOST"])
        return check(environ)

    monkeypatch.setattr(create, "_host_allowed", counted)

    def environ(host: str) -> dict:
        return {
            "HTTP_HOST": host,
            "SERVER_NAME": "x",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
        }

    answers = [
        endpoint.host_allowed(environ(host)) for host in ["jobs.example", "evil.example"] * 2
    ]
    assert answers == [True, False, True, False]
    assert checked == ["jobs.example", "evil.example"]  # each asked of Django once

    for number in range(5):
        assert endpoint.host_allowed(environ(f"h{number}.example")) is False
    assert len(endpoint._hosts) == 3  # a client sending new hosts costs no memory


def test_a_batch_that_fails_unexpectedly_answers_each_create_with_a_500_and_the_next_works(
    caplog,
):
    endpoint = CreateEndpoint()
    many = endpoint.many
    calls: list[int] = []

    def broken_once(requests):
        calls.append(len(requests))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return many(requests)

    endpoint.many = broken_once
    gateway = rsgi.WSGIGateway(
        lambda environ, start: [], threads=2, max_body_bytes=4096, create=endpoint
    )
    body = b'{"delay_seconds": 5}'

    async def send() -> Proto:
        proto = Proto(body)
        await gateway.__rsgi__(_scope(body), proto)
        return proto

    failed = asyncio.run(send())
    served = asyncio.run(send())

    [(status, headers, content)] = failed.answers
    assert status == 500
    assert dict(headers)["Content-Type"] == "application/problem+json"
    assert json.loads(content)["type"] == "/api/problems/server_error"
    assert "A batch of 1 creates failed" in caplog.text
    assert served.answers[0][0] == 202
    assert gateway.creates == [] and gateway.create_batches == 0 and gateway.in_flight == 0


def test_a_create_answer_is_compact_utf8_json_whatever_the_job_holds():
    """The gateway writes the answer with orjson: the bytes json.dumps would
    write compactly without escaping (a replay may show a finished job, with
    a photo's text in any language)."""
    from jobs.api import create
    from jobs.services import Created

    job = {
        "id": "0" * 26,
        "url": "/api/jobs/" + "0" * 26,
        "status": "completed",
        "delay_seconds": 5,
        "attempts": 1,
        "pending_reason": None,
        "result": {"photo": {"description": "Crème brûlée, 焼き鳥 🍢", "width": 4000}},
    }
    answer = create._accepted(Created(job["id"], True, {"job": job, "retry_after": 0}))

    assert answer.body == json.dumps(job, separators=(",", ":"), ensure_ascii=False).encode()
    assert ("Idempotent-Replayed", "true") in answer.headers
