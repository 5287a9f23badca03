"""What a process of the service does before it serves: a private data directory, a secret key.

Importing the settings only reads the environment: it writes nothing, so
they load on a read-only machine and in tools that merely inspect them.
The writes happen here, called by the entry points that run the service:
``manage.py`` for ``serve``, ``qcluster``, ``migrate`` and ``runserver``
(:data:`PREPARING_COMMANDS`), and the web server's WSGI and ASGI modules.

Everything under the data directory is private to the service's user:
it holds the admin sessions and password hashes (``db.sqlite3``), the key
that signs them (``secret_key``) and every job. :func:`prepare` sets the
process umask to ``0o077``, so whatever any library creates there (SQLite's
database and journal files, log segments, metric files) is ``0600`` /
``0700``, and takes back from group and others what an older version left
open. :mod:`filestore.atomic` creates its files and directories private
whatever the umask.
"""

from __future__ import annotations

import functools
import os
import secrets
import stat
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import lazy

from filestore import atomic

PRIVATE_UMASK = 0o077
# The ``manage.py`` commands that run (or set up) the service: they prepare
# the data directory before Django loads.
PREPARING_COMMANDS = frozenset({"serve", "qcluster", "migrate", "runserver"})
SECRET_KEY_FILE = "secret_key"
# Shorter keys are refused: a key is the only thing between a forger and
# the admin's sessions.
MIN_SECRET_KEY_LENGTH = 32


def prepare(data_dir: Path) -> None:
    """Make ``data_dir`` ready and private for this process and those it starts.

    Idempotent and cheap: every process of the service calls it at start.
    """
    os.umask(PRIVATE_UMASK)
    try:
        atomic.ensure_dir(data_dir / "tmp")
        atomic.ensure_dir(data_dir / "static")
        tighten(data_dir)
    except OSError as exc:
        raise _unusable(data_dir, exc) from None
    # Made now rather than on first use: the web and worker processes start
    # together, and a key read once at start is what every later request uses.
    stored_secret_key(data_dir)


def prepare_for_command(argv: list[str], data_dir: Path) -> None:
    """What ``manage.py`` does before running the command named in ``argv``."""
    # Any command may write to the data directory (createjob, collectstatic,
    # createsuperuser ...): whatever it creates there is private too.
    os.umask(PRIVATE_UMASK)
    if len(argv) > 1 and argv[1] in PREPARING_COMMANDS:
        prepare(data_dir)


def tighten(data_dir: Path) -> None:
    """Remove group and other permissions from ``data_dir`` and its top-level entries.

    Entries further down are left as they are: nobody but the owner gets
    past a directory of mode ``0700``, and a walk of every job file would
    make each start cost as much as the number of jobs stored.
    """
    for path in (data_dir, *data_dir.iterdir()):
        status = path.lstat()
        if stat.S_ISLNK(status.st_mode):
            continue  # chmod would follow it out of the data directory
        mode = stat.S_IMODE(status.st_mode)
        if mode & 0o077:
            os.chmod(path, mode & ~0o077)


def stored_secret_key(data_dir: Path) -> str:
    """The key kept in ``<data_dir>/secret_key``, made once (mode 0600) if there is none.

    It signs the admin's sessions and the worker's task packages, so it
    must survive restarts and be the same in the web and worker processes:
    whichever process comes first makes it, the others read it.
    """
    return _stored_secret_key(Path(data_dir))


@functools.cache
def _stored_secret_key(data_dir: Path) -> str:
    path = data_dir / SECRET_KEY_FILE
    try:
        try:
            key = path.read_text().strip()
        except FileNotFoundError:
            atomic.ensure_dir(data_dir / "tmp")
            # link() decides between processes racing to make it: one key wins.
            atomic.create_exclusive(
                path, secrets.token_urlsafe(50).encode(), tmp_dir=data_dir / "tmp"
            )
            key = path.read_text().strip()
    except OSError as exc:
        raise _unusable(data_dir, exc) from None
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ImproperlyConfigured(
            f"{path} holds no usable secret key; delete it to get a new one."
        )
    return key


# For the settings: a key read (or made) when Django first needs it, not
# when the settings are imported.
lazy_stored_secret_key = lazy(stored_secret_key, str)


def _unusable(data_dir: Path, exc: OSError) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"JOBS_DATA_DIR={str(data_dir)!r} cannot be created or written: {exc.strerror}."
    )
