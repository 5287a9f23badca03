from django.contrib import admin
from django.urls import include, path, re_path

from jobs.api.views import not_found as api_not_found

urlpatterns = [
    re_path(r"^api$", api_not_found),
    path("api/", include("jobs.api.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "jobs.api.handlers.not_found"
handler500 = "jobs.api.handlers.server_error"
