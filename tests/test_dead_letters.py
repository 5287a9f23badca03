"""A message the queue gives up on fails its job: the jobs app hands its handler to the storage.

The storage never imports the job layer; the jobs app registers its
handler when it starts, and every broker made afterwards, in every process
of the cluster, hands it to its queue. What the handler does to a job is
tested in ``tests/test_tasks.py``; that every broker reports to the
registered handler, in ``tests/contract/test_broker_contract.py``.
"""

from __future__ import annotations

import textwrap

import pytest

from jobs import tasks
from storage import dead_letters
from tests.django_process import environment, run_python


def test_the_jobs_app_registers_the_handler_that_fails_the_job():
    assert dead_letters.registered() is tasks.dead_letter


def test_the_brokers_of_the_clusters_forked_processes_report_to_the_jobs_handler(tmp_path):
    # As django-q2's cluster does: set Django up, then fork the processes
    # that make the brokers.
    script = textwrap.dedent(
        """
        import multiprocessing

        import django

        django.setup()

        from django_q.brokers import get_broker


        def report(results):
            handler = get_broker().connection.on_dead
            results.put(f"{handler.__module__}.{handler.__qualname__}")


        context = multiprocessing.get_context("fork")
        results = context.Queue()
        process = context.Process(target=report, args=(results,))
        process.start()
        print(results.get(timeout=30))
        process.join()
        """
    )

    done = run_python("-c", script, env=environment(tmp_path / "data"))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "jobs.tasks.dead_letter"


def test_it_refuses_a_handler_it_cannot_call():
    with pytest.raises(TypeError):
        dead_letters.register("jobs.tasks.dead_letter")

    assert dead_letters.registered() is tasks.dead_letter
