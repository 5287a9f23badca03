from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from jobs.api import events, views
from jobs.api.handlers import unknown_api_path


class OptionalSlashRouter(SimpleRouter):
    """Routes that answer both with and without a trailing slash."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("jobs", views.JobViewSet, basename="job")

urlpatterns = [
    *router.urls,
    path("stats", views.stats, name="stats"),
    path("config", views.config, name="config"),
    path("health", views.health, name="health"),
    # Like every DRF view, exempt from CSRF: nothing under /api/ reads the
    # session cookie, so a forged request gains nothing; without it an unsafe
    # method got the CSRF failure page instead of its 405.
    path("events", csrf_exempt(events.events), name="events"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    # Everything else under /api/ is a JSON 404, never the page.
    re_path(r"^.*$", unknown_api_path),
]
