"""A fresh Python process in the project, configured by its environment alone.

For what only a new process shows: start-up checks, settings read from the
environment, commands' exit statuses and output::

    done = manage("check", env=environment(tmp_path / "data", JOBS_HTTPS="true"))
    assert done.returncode == 0, done.stderr

The environment is this process's without the project's own settings, so
that a variable set in the shell running the tests (or by another test)
never reaches the child unnoticed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
TIMEOUT_SECONDS = 60.0

# Variables the project, Django or the metrics client read as settings.
_SETTINGS_PREFIXES = ("JOBS_", "DJANGO_", "UNSPLASH_", "PROMETHEUS_")
_SETTINGS_NAMES = {"PORT"}


def environment(data_dir: Path, **env: str) -> dict[str, str]:
    """This process's environment without its settings, then ``JOBS_DATA_DIR`` and ``env``."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_SETTINGS_PREFIXES) and name not in _SETTINGS_NAMES
    }
    environ.update(JOBS_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="jobsite.settings", **env)
    return environ


def run_python(
    *args: str, env: Mapping[str, str], timeout: float = TIMEOUT_SECONDS
) -> subprocess.CompletedProcess:
    """``python args...`` in the project directory, its output captured as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def manage(
    *args: str, env: Mapping[str, str], timeout: float = TIMEOUT_SECONDS
) -> subprocess.CompletedProcess:
    """``manage.py args...``, as :func:`run_python` runs it."""
    return run_python("manage.py", *args, env=env, timeout=timeout)
