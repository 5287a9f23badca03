"""Settings for the test suite: the product's settings, pointed at a scratch data directory.

pytest-django loads the settings before any conftest runs, and the settings
read the environment once, at import: the defaults must be in place first,
or a test run would write to the developer's ``./data``.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("JOBS_DATA_DIR", tempfile.mkdtemp(prefix="jobs-test-session-"))
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-that-is-long-enough-0123456789")
# Backpressure reads the queue by the real clock while most tests move the
# jobs' clock by hand (into the past, too): off unless a test turns it on.
os.environ.setdefault("JOBS_MAX_DUE_PER_SECOND", "0")
os.environ.setdefault("JOBS_MAX_LATENESS", "0")

from jobsite.settings import *  # noqa: F403

# Whitenoise looks for the collected files at start-up; the tests serve
# none, but an empty directory keeps it from warning on every request.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # noqa: F405
