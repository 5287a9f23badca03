"""Settings from the environment: bad values stop the start-up with a clear message."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from jobsite.env import envbool, envint, envlist, envpath, envstr, envurl
from tests.django_process import environment, manage, run_python

# --- the helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), (" Yes ", True), ("ON", True), ("0", False), ("off", False)],
)
def test_it_reads_booleans(raw, expected):
    assert envbool("FLAG", not expected, environ={"FLAG": raw}) is expected


@pytest.mark.parametrize("default", [True, False])
def test_it_takes_an_unset_or_empty_boolean_as_its_default(default):
    assert envbool("FLAG", default, environ={}) is default
    assert envbool("FLAG", default, environ={"FLAG": ""}) is default
    assert envbool("FLAG", default, environ={"FLAG": "  "}) is default


@pytest.mark.parametrize("raw", ["maybe", "2", "yes please", "t"])
def test_it_refuses_a_boolean_it_cannot_read(raw):
    with pytest.raises(ImproperlyConfigured, match="FLAG") as error:
        envbool("FLAG", False, environ={"FLAG": raw})

    assert "true or false" in str(error.value)


def test_it_reads_whole_numbers_within_bounds():
    assert envint("N", 7, minimum=1, maximum=10, environ={"N": " 10 "}) == 10
    assert envint("N", 7, minimum=-5, environ={"N": "-5"}) == -5
    assert envint("N", 7, environ={}) == 7
    assert envint("N", 7, environ={"N": ""}) == 7


@pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "8_000", "\uff10\uff18", "0x10", "5 5"])
def test_it_refuses_a_number_it_cannot_read(raw):
    with pytest.raises(ImproperlyConfigured, match=r"^N=.* is not a whole number"):
        envint("N", 7, environ={"N": raw})


@pytest.mark.parametrize(
    ("raw", "message"), [("0", "N=0 is below its minimum of 1"), ("11", "N=11 is above")]
)
def test_it_refuses_a_number_out_of_bounds(raw, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        envint("N", 7, minimum=1, maximum=10, environ={"N": raw})


def test_it_reads_strings_and_lists():
    assert envstr("S", "default", environ={"S": " value "}) == "value"
    assert envstr("S", "default", environ={"S": ""}) == "default"
    assert envlist("L", ["a"], environ={"L": " x, y ,,z "}) == ["x", "y", "z"]
    assert envlist("L", ["a"], environ={}) == ["a"]


def test_it_reads_urls():
    assert envurl("U", "https://x.test", environ={"U": "http://127.0.0.1:9/api/"}) == (
        "http://127.0.0.1:9/api"
    )


@pytest.mark.parametrize("raw", ["ftp://host", "api.unsplash.com", "https://", "http//x"])
def test_it_refuses_a_url_it_cannot_use(raw):
    with pytest.raises(ImproperlyConfigured, match=r"^U=.*http\(s\) URL"):
        envurl("U", "https://x.test", environ={"U": raw})


def test_it_reads_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert envpath("P", tmp_path / "d", environ={}) == tmp_path / "d"
    assert envpath("P", tmp_path / "d", environ={"P": "rel/dir"}) == tmp_path / "rel" / "dir"
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ImproperlyConfigured, match=r"P=.*not a directory"):
        envpath("P", tmp_path, environ={"P": str(tmp_path / "a-file")})


# --- start-up -------------------------------------------------------------------------


def _manage(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``manage.py`` in a fresh process, configured by ``env`` alone, data in ``root/data``."""
    return manage(*args, env=environment(root / "data", **env))


def test_it_starts_with_no_configuration_at_all(tmp_path):
    result = _manage(tmp_path / "run", "check")

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT='eighty' is not a whole number."),
        ({"PORT": "70000"}, "PORT=70000 is above its maximum of 65535."),
        ({"JOBS_MAX_DELAY": "0"}, "JOBS_MAX_DELAY=0 is below JOBS_MIN_DELAY=5."),
        ({"JOBS_DELAY_STEP": "7"}, "must be multiples of JOBS_DELAY_STEP=7."),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG='maybe' is not a boolean; use true or false."),
        ({"DJANGO_SECRET_KEY": "short"}, "DJANGO_SECRET_KEY must be at least 32 characters"),
        ({"UNSPLASH_API_URL": "api.unsplash.com"}, "UNSPLASH_API_URL="),
    ],
    ids=["port text", "port range", "max below min", "step", "debug", "secret", "url"],
)
def test_it_stops_on_a_bad_setting_with_one_clear_line(tmp_path, env, message):
    result = _manage(tmp_path / "run", "check", **env)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Configuration error: ")
    assert message in lines[0]


def test_it_stops_when_the_data_dir_is_a_file(tmp_path):
    data = tmp_path / "run" / "data"
    data.parent.mkdir()
    data.write_text("")

    result = _manage(tmp_path / "run", "check")

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"Configuration error: JOBS_DATA_DIR={str(data)!r} exists and is not a directory."
    ]


def _secret_key_of(root: Path, **env: str) -> str:
    result = _manage(
        root, "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)", **env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_it_generates_a_secret_key_once_and_keeps_it(tmp_path):
    first = _secret_key_of(tmp_path / "run")
    second = _secret_key_of(tmp_path / "run")

    key_file = tmp_path / "run" / "data" / "secret_key"
    key = key_file.read_text().strip()
    assert len(key) >= 32
    assert first == second == key
    assert key_file.stat().st_mode & 0o077 == 0
    assert _secret_key_of(tmp_path / "elsewhere") != key


def test_it_prefers_the_configured_secret_key(tmp_path):
    configured = "k" * 40

    assert _secret_key_of(tmp_path / "run", DJANGO_SECRET_KEY=configured) == configured
    assert not (tmp_path / "run" / "data" / "secret_key").exists()


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_importing_the_settings_writes_nothing(tmp_path):
    result = run_python(
        "-c",
        "from django.conf import settings; print(settings.JOBS_DATA_DIR, settings.DEBUG)",
        env=environment(tmp_path / "run" / "data"),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{tmp_path / 'run' / 'data'} False"
    assert not (tmp_path / "run").exists()


def test_it_checks_the_configuration_where_the_data_dir_cannot_be_written(tmp_path):
    (tmp_path / "read-only").write_text("")  # nothing can be made under a file

    # Metrics files are per process and may live elsewhere (a local disk).
    result = _manage(tmp_path / "read-only", "check", JOBS_METRICS_DIR=str(tmp_path / "metrics"))

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_migrate_stops_with_one_clear_line_when_the_data_dir_cannot_be_made(tmp_path):
    (tmp_path / "read-only").write_text("")

    result = _manage(tmp_path / "read-only", "migrate", "--noinput", "-v0")

    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Configuration error: JOBS_DATA_DIR=")
    assert "cannot be created or written" in line


def test_migrate_keeps_the_database_and_the_key_private(tmp_path):
    result = _manage(tmp_path / "run", "migrate", "--noinput", "-v0")

    assert result.returncode == 0, result.stderr
    data = tmp_path / "run" / "data"
    assert _mode(data) == 0o700
    assert _mode(data / "db.sqlite3") == 0o600
    assert _mode(data / "secret_key") == 0o600


def test_the_web_server_entry_prepares_a_private_data_dir(tmp_path):
    result = run_python("-c", "import jobsite.wsgi", env=environment(tmp_path / "run" / "data"))

    assert result.returncode == 0, result.stderr
    data = tmp_path / "run" / "data"
    assert _mode(data) == _mode(data / "tmp") == 0o700
    assert _mode(data / "secret_key") == 0o600


def test_a_key_stored_by_an_older_version_keeps_working(tmp_path):
    data = tmp_path / "run" / "data"
    data.mkdir(parents=True)
    (data / "secret_key").write_text("k" * 50 + "\n")
    (data / "secret_key").chmod(0o644)

    assert _secret_key_of(tmp_path / "run") == "k" * 50
    assert _manage(tmp_path / "run", "migrate", "--noinput", "-v0").returncode == 0
    assert (data / "secret_key").read_text() == "k" * 50 + "\n"
    assert _mode(data / "secret_key") == 0o600
