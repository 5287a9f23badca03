"""Security headers Django's SecurityMiddleware does not set: CSP and CORP.

Three Content-Security-Policies, chosen by path:

- the page: its own scripts and styles only (the build has no inline code),
  photos from ``JOBS_PHOTO_HOSTS`` and ``'self'`` (the demo illustrations
  under /static/), ``data:`` images (the blur-hash previews are drawn to a
  canvas and shown as data URLs), and requests to its own origin only;
- the admin: the same, plus inline styles, which Django's admin templates
  and ours carry (scripts stay ``'self'``);
- the API: nothing at all may load, since a JSON answer opened as a
  document should never run or embed anything.

A photo source other than Unsplash's API (``UNSPLASH_API_URL``: a mirror,
a proxy, a fake for tests) may hand out photos from other hosts, which the
page's policy blocks: the photos stay blank. :func:`check_photo_hosts`, a
system check, warns at start (``manage.py serve``, ``migrate``, ``check``)
when the API is not Unsplash's and ``JOBS_PHOTO_HOSTS`` is still
Unsplash's image host alone.

``Cross-Origin-Resource-Policy: same-origin`` on everything: no other site
has a reason to embed our answers or assets, and it keeps them out of
another origin's process (Spectre-style reads).

The middleware sits before whitenoise, so the files it serves (the page's
``index.html`` included) carry the headers too.

:func:`api_headers` is the whole set Django's middleware gives an API
answer (theirs and ours), for the answers the web server's gateway makes
without Django (``POST /api/jobs``, see :mod:`jobs.api.create`); a test
checks that both paths send the same headers.
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.signals import setting_changed
from django.dispatch import receiver

from jobs.api.problems import is_api_path

# The defaults of UNSPLASH_API_URL and JOBS_PHOTO_HOSTS (jobsite/settings.py).
UNSPLASH_API_URL = "https://api.unsplash.com"
UNSPLASH_PHOTO_HOSTS = ["https://images.unsplash.com"]


def _policy(directives: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def page_policy(*, photo_hosts: list[str], inline_styles: bool = False) -> str:
    return _policy(
        {
            "default-src": "'self'",
            "script-src": "'self'",
            "style-src": "'self' 'unsafe-inline'" if inline_styles else "'self'",
            "img-src": " ".join(["'self'", "data:", *photo_hosts]),
            "connect-src": "'self'",
            "font-src": "'self'",
            "object-src": "'none'",
            "base-uri": "'none'",
            "form-action": "'self'",
            "frame-ancestors": "'none'",
        }
    )


def check_photo_hosts(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A warning when the photo API is not Unsplash's but the page may show only its photos."""
    api_url = settings.UNSPLASH_API_URL.rstrip("/")
    hosts = list(settings.JOBS_PHOTO_HOSTS)
    if api_url == UNSPLASH_API_URL or hosts != UNSPLASH_PHOTO_HOSTS:
        return []
    return [
        checks.Warning(
            f"UNSPLASH_API_URL is {api_url}, but the page may load photos from "
            f"{', '.join(hosts)} only (JOBS_PHOTO_HOSTS, the page's Content-Security-Policy): "
            "photos served from any other host are blocked and show only their credit.",
            hint=(
                "Set JOBS_PHOTO_HOSTS to the origins the photos of that API are served from, "
                "comma-separated, e.g. JOBS_PHOTO_HOSTS=https://images.example.com "
                "(keep https://images.unsplash.com in it if some photos still come from there)."
            ),
            id="jobs.W001",
        )
    ]


API_POLICY = _policy({"default-src": "'none'", "frame-ancestors": "'none'"})
CORP = "same-origin"


def api_headers(*, secure: bool) -> list[tuple[str, str]]:
    """The security headers of an API answer, as the middleware of ``MIDDLEWARE`` sets them
    (Django's ``SecurityMiddleware`` and ``XFrameOptionsMiddleware``, and ours).

    Made once per value of ``secure`` from the settings, and again after a
    change of the settings (tests): the gateway adds them to every create.
    """
    headers = _api_headers.get(secure)
    if headers is None:
        headers = _api_headers[secure] = tuple(_make_api_headers(secure))
    return list(headers)


_api_headers: dict[bool, tuple[tuple[str, str], ...]] = {}


@receiver(setting_changed)
def _settings_changed(**kwargs) -> None:
    _api_headers.clear()


def _make_api_headers(secure: bool) -> list[tuple[str, str]]:
    headers = []
    if settings.SECURE_HSTS_SECONDS and secure:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append(("Strict-Transport-Security", hsts))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        headers.append(("Referrer-Policy", settings.SECURE_REFERRER_POLICY))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    headers.append(("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY")))
    headers.append(("Content-Security-Policy", API_POLICY))
    headers.append(("Cross-Origin-Resource-Policy", CORP))
    return headers


class SecurityHeadersMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response
        hosts = settings.JOBS_PHOTO_HOSTS
        self.page = page_policy(photo_hosts=hosts)
        self.admin = page_policy(photo_hosts=hosts, inline_styles=True)

    def __call__(self, request):
        response = self.get_response(request)
        path = request.path_info
        if is_api_path(path):
            policy = API_POLICY
        elif path.startswith("/admin/"):
            policy = self.admin
        else:
            policy = self.page
        # setdefault: a view that needs a different policy sets its own.
        response.setdefault("Content-Security-Policy", policy)
        response.setdefault("Cross-Origin-Resource-Policy", CORP)
        return response
