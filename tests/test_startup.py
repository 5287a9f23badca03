"""Start-up: the data directory is private to the service's user, and the secret key is kept."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from filestore import atomic
from jobsite import startup

KEY = "an-existing-key-made-by-an-older-version-0123456789"


@pytest.fixture(autouse=True)
def umask():
    """Start from the usual permissive umask; give the test runner its own back afterwards."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    return tmp_path / "fresh" / "data"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_it_makes_a_fresh_data_dir_private(fresh):
    startup.prepare(fresh)

    assert mode(fresh) == 0o700
    assert mode(fresh / "tmp") == mode(fresh / "static") == 0o700
    assert mode(fresh / "secret_key") == 0o600
    assert len((fresh / "secret_key").read_text().strip()) >= startup.MIN_SECRET_KEY_LENGTH


def test_what_the_process_creates_afterwards_is_private(fresh):
    startup.prepare(fresh)

    # As SQLite creates db.sqlite3, or any library its files.
    (fresh / "db.sqlite3").write_bytes(b"")
    (fresh / "events").mkdir()

    assert mode(fresh / "db.sqlite3") == 0o600
    assert mode(fresh / "events") == 0o700


def test_it_takes_back_what_an_older_version_left_open(tmp_path):
    data = tmp_path / "old"
    data.mkdir(mode=0o755)
    for name in ("db.sqlite3", "db.sqlite3-wal", "secret_key"):
        (data / name).write_text(KEY)
        (data / name).chmod(0o644)
    for name in ("jobs", "queue", "events", "tmp"):
        (data / name).mkdir(mode=0o777)
        (data / name).chmod(0o777)
    (data / "db.sqlite3").chmod(0o666)

    startup.prepare(data)

    assert {entry.name: mode(entry) for entry in [data, *data.iterdir()]} == {
        "old": 0o700,
        "db.sqlite3": 0o600,
        "db.sqlite3-wal": 0o600,
        "secret_key": 0o600,
        "jobs": 0o700,
        "queue": 0o700,
        "events": 0o700,
        "tmp": 0o700,
        "static": 0o700,
    }
    # The key the older version made keeps working.
    assert startup.stored_secret_key(data) == KEY


def test_it_does_not_follow_a_symlink_out_of_the_data_dir(tmp_path):
    outside = tmp_path / "shared.txt"
    outside.write_text("not ours")
    outside.chmod(0o644)
    data = tmp_path / "old"
    data.mkdir()
    (data / "link").symlink_to(outside)

    startup.prepare(data)

    assert mode(outside) == 0o644


def test_it_refuses_a_stored_key_too_short_to_protect_anything(tmp_path):
    data = tmp_path / "old"
    data.mkdir()
    (data / "secret_key").write_text("short\n")

    with pytest.raises(ImproperlyConfigured, match="holds no usable secret key"):
        startup.stored_secret_key(data)


def test_it_names_the_data_dir_when_it_cannot_be_made(tmp_path):
    (tmp_path / "a-file").write_text("")
    data = tmp_path / "a-file" / "data"

    with pytest.raises(ImproperlyConfigured, match=r"JOBS_DATA_DIR=.*cannot be created or written"):
        startup.prepare(data)


def test_only_the_commands_that_run_the_service_prepare_the_data_dir(tmp_path):
    startup.prepare_for_command(["manage.py", "check"], tmp_path / "checked")
    assert not (tmp_path / "checked").exists()
    assert os.umask(0o077) == 0o077  # but whatever a command writes is private

    startup.prepare_for_command(["manage.py", "qcluster"], tmp_path / "worker")
    assert mode(tmp_path / "worker") == 0o700


# --- the atomic helpers, whatever the umask ----------------------------------------------


def test_the_store_creates_private_files_and_directories_under_any_umask(tmp_path):
    os.umask(0)
    tmp_dir = tmp_path / "deep" / "tmp"

    atomic.ensure_dir(tmp_dir)
    temp = atomic.write_temp(tmp_dir, b"x")
    atomic.write_atomic(tmp_path / "replaced.json", b"{}", tmp_dir=tmp_dir)
    atomic.create_exclusive(tmp_path / "created.json", b"{}", tmp_dir=tmp_dir)

    assert mode(tmp_path / "deep") == mode(tmp_dir) == 0o700
    assert mode(temp) == 0o600
    assert mode(tmp_path / "replaced.json") == mode(tmp_path / "created.json") == 0o600
