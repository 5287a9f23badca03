"""Admin logins are throttled per client address and username."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from jobs import clock
from tests.clocks import FakeClock

LOGIN_URL = "/admin/login/"
PASSWORD = "a long and proper password"


@pytest.fixture
def now(monkeypatch) -> FakeClock:
    fake_clock = FakeClock()
    monkeypatch.setattr(clock, "now", fake_clock)
    return fake_clock


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    # The real hasher spends a second of CPU per password on purpose; not needed here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice", password=PASSWORD, is_staff=True)


def _login(client, password: str, *, username: str = "alice", address: str = "203.0.113.7"):
    return client.post(LOGIN_URL, {"username": username, "password": password}, REMOTE_ADDR=address)


def _logged_in(response) -> bool:
    return response.status_code == 302 and response.wsgi_request.user.is_authenticated


def test_it_refuses_even_the_right_password_after_five_failures(client, now, alice):
    for _ in range(5):
        response = _login(client, "wrong")
        assert response.status_code == 200  # the form again, with its usual error

    refused = _login(client, PASSWORD)

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "Too many failed logins" in refused.content.decode()
    assert not refused.wsgi_request.user.is_authenticated


def test_it_lets_the_user_in_again_once_it_has_cooled_down(client, now, settings, alice):
    for _ in range(settings.JOBS_THROTTLE_LOGIN_FAILURES):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 429

    now.advance(settings.JOBS_THROTTLE_LOGIN_WINDOW / settings.JOBS_THROTTLE_LOGIN_FAILURES)

    assert _logged_in(_login(client, PASSWORD))


def test_a_success_clears_the_failures_before_it(client, now, alice):
    for _ in range(4):
        _login(client, "wrong")
    assert _logged_in(_login(client, PASSWORD))
    client.logout()

    for _ in range(4):
        assert _login(client, "wrong").status_code == 200
    assert _logged_in(_login(client, PASSWORD))


def test_failures_for_one_username_or_address_do_not_lock_out_another(client, now, alice):
    User.objects.create_user("bob", password=PASSWORD, is_staff=True)
    for _ in range(6):
        _login(client, "wrong", username="alice")

    assert _logged_in(_login(client, PASSWORD, username="bob"))
    client.logout()
    assert _logged_in(_login(client, PASSWORD, address="198.51.100.1"))


def test_a_refused_try_does_not_check_the_password(client, now, alice, monkeypatch):
    for _ in range(5):
        _login(client, "wrong")
    checked = []
    monkeypatch.setattr(User, "check_password", lambda self, raw: checked.append(raw))

    _login(client, "guess")

    assert checked == []
