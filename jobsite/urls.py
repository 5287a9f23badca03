from django.contrib import admin
from django.urls import include, path, re_path

from jobs import metrics, page
from jobs.api.views import not_found as api_not_found

urlpatterns = [
    re_path(r"^api$", api_not_found),
    path("api/", include("jobs.api.urls")),
    path("admin/", admin.site.urls),
    path("metrics", metrics.metrics_view, name="metrics"),
    # Page routes last: unknown /api/ paths are JSON 404s above, and missing
    # files under /assets/ and /static/ stay 404s instead of becoming the page.
    re_path(r"^(?!api/|admin/|assets/|static/).*$", page.index, name="page"),
]

handler404 = "jobs.api.handlers.not_found"
handler500 = "jobs.api.handlers.server_error"
