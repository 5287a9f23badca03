from django.contrib import admin
from django.urls import include, path, re_path

from jobs import metrics, page
from jobs.api.handlers import unknown_api_path

urlpatterns = [
    re_path(r"^api$", unknown_api_path),
    path("api/", include("jobs.api.urls")),
    path("admin/", admin.site.urls),
    path("metrics", metrics.metrics_view, name="metrics"),
    # Page routes last: unknown /api/ paths are JSON 404s above, and missing
    # files under /assets/ and /static/ stay 404s instead of becoming the page.
    re_path(r"^(?!api/|admin/|assets/|static/).*$", page.index, name="page"),
]

handler400 = "jobs.api.handlers.bad_request"
handler403 = "jobs.api.handlers.permission_denied"
handler404 = "jobs.api.handlers.not_found"
handler500 = "jobs.api.handlers.server_error"
