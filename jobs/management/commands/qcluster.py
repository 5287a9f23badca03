"""``manage.py qcluster``: django-q2's cluster, with recovery and a heartbeat."""

from __future__ import annotations

import signal

from django.conf import settings
from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as ClusterCommand

from jobs import capacity
from jobs.worker import Supervisor, become_cluster_owner


class Command(ClusterCommand):
    help = (
        "Run the jobs worker: django-q2's cluster on the file broker, plus a recovery pass "
        "at start and every minute, and a heartbeat for GET /api/health."
    )

    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018 - task packages are signed with it: fail early without one
        # Before the cluster's processes are forked: they inherit the identity
        # their leases carry, and die with this process.
        become_cluster_owner()
        # Also before: the counters the workers measure their capacity with.
        capacity.share()
        cluster = Cluster()
        cluster.start()
        supervisor = Supervisor()

        def sentinel_alive() -> bool:
            return cluster.sentinel is not None and cluster.sentinel.is_alive()

        # django-q2 stops the cluster from inside its signal handler; if the
        # signal also reached the sentinel (a signal to the whole process
        # group), that handler waits forever on the dead sentinel. So the
        # handler only asks the loop to end, and the cluster is stopped
        # afterwards, and only while its sentinel lives.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: supervisor.stop())
        try:
            # The cluster already runs due jobs; the heartbeat goes out before
            # the first recovery pass, which takes a while over a large store.
            self.stderr.write(f"Recovery at start: {supervisor.tick()}")
            if not options.get("run_once"):
                supervisor.run(sentinel_alive)
        finally:
            # Also when the loop died of an error: a sentinel left running
            # would keep this process from exiting.
            if sentinel_alive():
                cluster.stop()
