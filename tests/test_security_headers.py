"""Security headers on every answer, and the TLS settings behind JOBS_HTTPS."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.django_process import environment, manage

# Django's test client, then the web server's gateway (tests/api_clients.py).
pytestmark = pytest.mark.both_servers


def _directives(response) -> dict[str, set[str]]:
    policy = response["Content-Security-Policy"]
    parsed = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        parsed[name] = set(values)
    return parsed


@pytest.fixture
def built_page(settings, tmp_path):
    """A page build of our own, so the test does not depend on frontend/dist."""
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "index.html").write_text("<!doctype html><title>Jobs</title>")
    settings.FRONTEND_DIST = tmp_path / "dist"


def test_the_page_may_run_only_its_own_code_and_show_photos_from_unsplash(client, built_page):
    response = client.get("/")

    assert response.status_code == 200
    csp = _directives(response)
    assert csp["default-src"] == {"'self'"}
    assert csp["script-src"] == {"'self'"}
    assert csp["style-src"] == {"'self'"}
    assert csp["connect-src"] == {"'self'"}
    # 'self': the demo illustrations; data: the blur-hash previews drawn on a canvas.
    assert csp["img-src"] == {"'self'", "data:", "https://images.unsplash.com"}
    assert csp["object-src"] == {"'none'"}
    assert csp["frame-ancestors"] == {"'none'"}
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_the_admin_may_use_inline_styles_but_not_inline_scripts(client):
    response = client.get("/admin/login/")

    assert response.status_code == 200
    csp = _directives(response)
    assert csp["script-src"] == {"'self'"}
    assert csp["style-src"] == {"'self'", "'unsafe-inline'"}
    assert "https://images.unsplash.com" in csp["img-src"]  # the jobs list's thumbnails
    assert response["X-Frame-Options"] == "DENY"


def test_api_answers_may_load_nothing(client):
    response = client.get("/api/config")

    assert _directives(response) == {"default-src": {"'none'"}, "frame-ancestors": {"'none'"}}
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_files_served_by_whitenoise_carry_the_page_policy(client, settings):
    if settings.WHITENOISE_ROOT is None:
        pytest.skip("the page is not built")
    response = client.get("/favicon.svg")

    assert response.status_code == 200
    assert _directives(response)["script-src"] == {"'self'"}
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"


def test_behind_tls_http_is_redirected_except_the_health_probe(client, settings):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/api/jobs").status_code == 301
    assert client.get("/api/jobs")["Location"].startswith("https://")
    assert client.get("/api/health").status_code in (200, 503)


# --- the settings, read from the environment by a fresh process ------------------------


SHOW = (
    "import json; from django.conf import settings as s; print(json.dumps({name: getattr(s, name) "
    "for name in ('SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SESSION_COOKIE_SECURE', "
    "'CSRF_COOKIE_SECURE', 'SECURE_PROXY_SSL_HEADER', 'JOBS_PHOTO_HOSTS')}))"
)


def _settings(root: Path, **env: str) -> subprocess.CompletedProcess:
    return manage("shell", "-c", SHOW, env=environment(root / "data", **env))


def test_tls_settings_are_off_for_plain_http_and_on_with_jobs_https(tmp_path):
    plain = _settings(tmp_path)
    tls = _settings(tmp_path, JOBS_HTTPS="true", JOBS_PROXY_SSL_HEADER="X-Forwarded-Proto")

    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout.splitlines()[-1]) == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": None,
        "JOBS_PHOTO_HOSTS": ["https://images.unsplash.com"],
    }
    assert tls.returncode == 0, tls.stderr
    on = json.loads(tls.stdout.splitlines()[-1])
    assert on["SECURE_SSL_REDIRECT"] and on["SESSION_COOKIE_SECURE"] and on["CSRF_COOKIE_SECURE"]
    assert on["SECURE_HSTS_SECONDS"] >= 180 * 24 * 3600
    assert on["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_it_stops_on_a_proxy_header_that_is_not_a_header_name(tmp_path):
    result = _settings(tmp_path, JOBS_PROXY_SSL_HEADER="X-Forwarded-Proto: https")

    assert result.returncode != 0
    assert "JOBS_PROXY_SSL_HEADER" in result.stderr


# --- photos from another host than Unsplash's -------------------------------------------


def test_a_photo_api_elsewhere_with_only_unsplash_photos_allowed_is_warned_about_at_start(
    tmp_path,
):
    mirror = manage(
        "check",
        env=environment(tmp_path / "data", UNSPLASH_API_URL="https://unsplash-mirror.example.com"),
    )
    default = manage("check", env=environment(tmp_path / "data"))

    assert mirror.returncode == 0, mirror.stderr  # a warning, not an error
    assert "(jobs.W001) UNSPLASH_API_URL is https://unsplash-mirror.example.com" in mirror.stderr
    assert "JOBS_PHOTO_HOSTS" in mirror.stderr
    assert default.returncode == 0, default.stderr
    assert "jobs.W001" not in default.stderr + default.stdout


# (UNSPLASH_API_URL, JOBS_PHOTO_HOSTS, whether to warn)
PHOTO_SETUPS = [
    ("https://unsplash-mirror.example.com", ["https://images.unsplash.com"], True),
    ("http://127.0.0.1:8765", ["https://images.unsplash.com"], True),
    ("https://unsplash-mirror.example.com", ["https://images.example.com"], False),
    (
        "https://unsplash-mirror.example.com",
        ["https://images.unsplash.com", "https://images.example.com"],
        False,
    ),
    ("https://api.unsplash.com", ["https://images.unsplash.com"], False),
    ("https://api.unsplash.com/", ["https://images.unsplash.com"], False),
]


def test_the_warning_is_given_only_when_photos_could_come_from_a_blocked_host(settings):
    from django.core import checks

    warned = []
    for api_url, photo_hosts, _ in PHOTO_SETUPS:
        settings.UNSPLASH_API_URL = api_url
        settings.JOBS_PHOTO_HOSTS = photo_hosts
        found = [message for message in checks.run_checks() if message.id == "jobs.W001"]
        assert all(message.level == checks.WARNING for message in found)
        assert all("JOBS_PHOTO_HOSTS" in message.hint for message in found)
        warned.append(len(found))

    assert warned == [1 if expected else 0 for *_, expected in PHOTO_SETUPS]


SECURITY_HEADERS = (
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "X-Frame-Options",
    "Content-Security-Policy",
    "Cross-Origin-Resource-Policy",
)


@pytest.mark.parametrize("secure", [False, True])
@pytest.mark.parametrize("body", ['{"delay_seconds": 30}', '{"delay_seconds": 7}'])
def test_django_and_the_gateway_answer_a_create_with_the_same_headers(settings, secure, body):
    # The gateway answers creates without Django's middleware: its own list
    # of security headers (jobsite.security.api_headers) must not drift.
    from django.test import Client

    from tests.api_clients import GatewayClient

    settings.SECURE_HSTS_SECONDS = 3600
    answers = [
        each.post("/api/jobs", data=body, content_type="application/json", secure=secure)
        for each in (Client(), GatewayClient())
    ]

    django, gateway = ({name: r.get(name) for name in SECURITY_HEADERS} for r in answers)
    assert [r.status_code for r in answers] in ([202, 202], [400, 400])
    assert django == gateway
    assert (django["Strict-Transport-Security"] is not None) == secure
    assert django["Content-Security-Policy"] and django["X-Frame-Options"]


def test_the_gateway_s_headers_follow_a_change_of_the_settings(settings):
    from jobsite.security import api_headers

    assert dict(api_headers(secure=True)).get("Strict-Transport-Security") is None
    settings.SECURE_HSTS_SECONDS = 60
    assert dict(api_headers(secure=True))["Strict-Transport-Security"] == "max-age=60"
    settings.SECURE_REFERRER_POLICY = "no-referrer"
    assert dict(api_headers(secure=False))["Referrer-Policy"] == "no-referrer"
    # Each call hands out a list of its own.
    api_headers(secure=False).clear()
    assert api_headers(secure=False)
