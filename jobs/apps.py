from django.apps import AppConfig
from django.core import checks

from storage import dead_letters


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        # A message the queue gave up on fails its job. Every process runs
        # this at start-up, before it makes a broker; django-q2's cluster
        # forks its pusher, workers and monitor after it, so they have it too.
        # Imported here: the task module needs the app registry ready.
        from jobs.tasks import dead_letter

        dead_letters.register(dead_letter)
        # Warns when the page's photo hosts do not match the photo API.
        from jobsite.security import check_photo_hosts

        checks.register(check_photo_hosts)
