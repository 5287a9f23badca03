"""Settings: every knob comes from the environment (see .env.example).

The defaults run the whole system out of the box on 127.0.0.1 with the
offline demo photo source; a bad value stops the start-up with a message
naming the variable.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from jobsite.env import envbool, envint, envlist, envpath, envredisurl, envstr, envurl
from jobsite.startup import MIN_SECRET_KEY_LENGTH, lazy_stored_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Data directory: everything the system writes lives here ---------------
# Made (private) by jobsite.startup when a process of the service starts;
# importing the settings writes nothing.
JOBS_DATA_DIR = envpath("JOBS_DATA_DIR", BASE_DIR / "data")


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, or one generated once and kept in the data directory.

    The admin's sessions and the worker's task packages are signed with it,
    so it must survive restarts and be the same in the web and worker
    processes. The stored key is read when Django first needs it.
    """
    configured = envstr("DJANGO_SECRET_KEY", "")
    if configured:
        if len(configured) < MIN_SECRET_KEY_LENGTH:
            raise ImproperlyConfigured(
                f"DJANGO_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters long."
            )
        return configured
    return lazy_stored_secret_key(JOBS_DATA_DIR)


SECRET_KEY = _secret_key()
DEBUG = envbool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
PORT = envint("PORT", 8000, minimum=1, maximum=65535)

# --- Jobs ----------------------------------------------------------------
JOBS_MIN_DELAY = envint("JOBS_MIN_DELAY", 5, minimum=0)
JOBS_MAX_DELAY = envint("JOBS_MAX_DELAY", 300, minimum=0)
JOBS_DELAY_STEP = envint("JOBS_DELAY_STEP", 5, minimum=1)
if JOBS_MAX_DELAY < JOBS_MIN_DELAY:
    raise ImproperlyConfigured(
        f"JOBS_MAX_DELAY={JOBS_MAX_DELAY} is below JOBS_MIN_DELAY={JOBS_MIN_DELAY}."
    )
if JOBS_MIN_DELAY % JOBS_DELAY_STEP or JOBS_MAX_DELAY % JOBS_DELAY_STEP:
    raise ImproperlyConfigured(
        f"JOBS_MIN_DELAY={JOBS_MIN_DELAY} and JOBS_MAX_DELAY={JOBS_MAX_DELAY} must be "
        f"multiples of JOBS_DELAY_STEP={JOBS_DELAY_STEP}."
    )
# How many times a queue message is delivered before it is dead-lettered (its
# job then fails: the jobs app registers the handler, see storage/dead_letters.py).
JOBS_MAX_DELIVERIES = envint("JOBS_MAX_DELIVERIES", 5, minimum=1)
# Idempotency keys are kept at least this long.
JOBS_IDEMPOTENCY_TTL = envint("JOBS_IDEMPOTENCY_TTL", 24 * 3600, minimum=24 * 3600)
JOBS_WORKERS = envint("JOBS_WORKERS", 2, minimum=1, maximum=64)
# The worker counts as alive when its heartbeat is younger than this.
JOBS_HEARTBEAT_MAX_AGE = envint("JOBS_HEARTBEAT_MAX_AGE", 30, minimum=5)

# --- Photo source ----------------------------------------------------------
UNSPLASH_ACCESS_KEY = envstr("UNSPLASH_ACCESS_KEY", "")
UNSPLASH_API_URL = envurl("UNSPLASH_API_URL", "https://api.unsplash.com")
UNSPLASH_APP_NAME = envstr("UNSPLASH_APP_NAME", "food_jobs")
if not all(char.isalnum() or char in "-_" for char in UNSPLASH_APP_NAME):
    raise ImproperlyConfigured(
        f"UNSPLASH_APP_NAME={UNSPLASH_APP_NAME!r} may hold only letters, digits, - and _."
    )

# --- Django ----------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Before django_q: our qcluster command (recovery + heartbeat) wraps its own.
    "jobs",
    "django_q",
]

MIDDLEWARE = [
    # First, so it times every request and sees every final status.
    "jobs.metrics.MetricsMiddleware",
    "jobs.api.middleware.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before whitenoise, so the files it serves carry a CSP too.
    "jobsite.security.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jobsite.urls"
WSGI_APPLICATION = "jobsite.wsgi.application"
ASGI_APPLICATION = "jobsite.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Only Django's own tables (users and sessions of the admin page) live here.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": JOBS_DATA_DIR / "db.sqlite3",
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = JOBS_DATA_DIR / "static"
FRONTEND_DIST = BASE_DIR / "frontend" / "dist"
# The page's build is served from the site root; its hashed assets never change.
WHITENOISE_ROOT = FRONTEND_DIST if FRONTEND_DIST.is_dir() else None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG


def WHITENOISE_IMMUTABLE_FILE_TEST(path: str, url: str) -> bool:  # noqa: N802
    return url.startswith("/assets/")


# A job request is a few bytes of JSON; anything much larger is refused (413).
JOBS_MAX_BODY_BYTES = 16 * 1024
# Requests waiting for a web thread beyond which new ones are refused at
# once with 503 (jobsite/rsgi.py); 0: wait however long it takes.
JOBS_WEB_QUEUE_LIMIT = envint("JOBS_WEB_QUEUE_LIMIT", 64, minimum=0)
# A create arriving within this many milliseconds of another waits up to as
# long for more to share its batch's flushes (jobsite/rsgi.py); 0: never waits.
JOBS_CREATE_GATHER_SECONDS = envint("JOBS_CREATE_GATHER_MS", 40, minimum=0, maximum=1000) / 1000
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["jobs.api.parsers.JsonParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    # No authentication: nothing under /api/ reads the session cookie, so
    # the API needs no CSRF checks (DRF views are CSRF-exempt without
    # SessionAuthentication). The create, the API's one write, checks its
    # media type and throttle itself (jobs.api.create): no DRF checks.
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "jobs.api.errors.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Food photo jobs API",
    "DESCRIPTION": "Create jobs that fetch a random food photo after a delay, and watch them.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobs.api.schema.finish_schema",
    ],
}

# --- Security: HTTPS, headers, throttling -----------------------------------
# JOBS_HTTPS=true when the site is served over TLS (directly or behind a
# proxy): redirect http to https, send HSTS, mark cookies Secure. Off for
# `make run` on plain http.
JOBS_HTTPS = envbool("JOBS_HTTPS", False)
SECURE_SSL_REDIRECT = JOBS_HTTPS
# Load balancers probe health over plain http.
SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
SESSION_COOKIE_SECURE = JOBS_HTTPS
CSRF_COOKIE_SECURE = JOBS_HTTPS
SECURE_HSTS_SECONDS = envint("JOBS_HSTS_SECONDS", 365 * 24 * 3600 if JOBS_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("JOBS_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("JOBS_HSTS_PRELOAD", False)
# The header a TLS-terminating proxy sets to "https" (e.g. X-Forwarded-Proto).
# Set it only behind a proxy that always sets or strips it: a client could
# otherwise claim https itself.
_PROXY_SSL_HEADER = envstr("JOBS_PROXY_SSL_HEADER", "")
if _PROXY_SSL_HEADER and not all(c.isalnum() or c == "-" for c in _PROXY_SSL_HEADER):
    raise ImproperlyConfigured(
        f"JOBS_PROXY_SSL_HEADER={_PROXY_SSL_HEADER!r} is not a header name "
        "(e.g. X-Forwarded-Proto)."
    )
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https") if _PROXY_SSL_HEADER else None
)
# How many proxies of ours add to X-Forwarded-For; 0: the peer is the client.
JOBS_NUM_PROXIES = envint("JOBS_NUM_PROXIES", 0, minimum=0, maximum=10)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Where the page may load photos from (its Content-Security-Policy img-src).
JOBS_PHOTO_HOSTS = envlist("JOBS_PHOTO_HOSTS", ["https://images.unsplash.com"])
for _host in JOBS_PHOTO_HOSTS:
    if not _host.startswith(("https://", "http://")) or any(c in _host for c in " ;'\""):
        raise ImproperlyConfigured(
            f"JOBS_PHOTO_HOSTS holds {_host!r}; list origins such as https://images.example.com."
        )
# Creates per client address: a token bucket of BURST refilled at RATE per
# second (0 turns it off), kept in each web process's memory.
JOBS_THROTTLE_CREATE_RATE = envint("JOBS_THROTTLE_CREATE_RATE", 50, minimum=0)
JOBS_THROTTLE_CREATE_BURST = envint("JOBS_THROTTLE_CREATE_BURST", 200, minimum=1)
# Failed admin logins per address and username: this many, then one more
# per WINDOW / FAILURES seconds.
JOBS_THROTTLE_LOGIN_FAILURES = envint("JOBS_THROTTLE_LOGIN_FAILURES", 5, minimum=1)
JOBS_THROTTLE_LOGIN_WINDOW = envint("JOBS_THROTTLE_LOGIN_WINDOW", 300, minimum=1)

# --- Several machines: Redis ----------------------------------------------------
# Set, the queue, the live events, the photo pool with its rate-limit gate and
# the worker heartbeats live in this Redis, shared by every host; job files and
# idempotency records stay in JOBS_DATA_DIR, which all hosts then mount.
# Unset, everything is files on this machine. jobs/backends.py picks them.
JOBS_REDIS_URL = envredisurl("JOBS_REDIS_URL")

# --- django-q2 -------------------------------------------------------------
# The broker is our file queue; no job data and no task results go to the
# database. See the README ("Worker configuration") for each choice.
# A task is killed after JOBS_TASK_TIMEOUT seconds; its message comes back
# after JOBS_QUEUE_RETRY seconds (the lease), which must be longer.
JOBS_TASK_TIMEOUT = envint("JOBS_TASK_TIMEOUT", 60, minimum=1)
JOBS_QUEUE_RETRY = envint("JOBS_QUEUE_RETRY", 90, minimum=2)
if JOBS_QUEUE_RETRY <= JOBS_TASK_TIMEOUT:
    raise ImproperlyConfigured(
        f"JOBS_QUEUE_RETRY={JOBS_QUEUE_RETRY} must be longer than "
        f"JOBS_TASK_TIMEOUT={JOBS_TASK_TIMEOUT}, or a running task would be delivered twice."
    )
# Backpressure (jobs/admission.py): a create is refused with 503 when more
# than JOBS_MAX_DUE_PER_SECOND jobs already fall due in its second, or while
# the oldest due job has waited more than JOBS_MAX_LATENESS seconds. 0: off.
# "auto": 90 % of the capacity the workers measure (jobs/capacity.py), or of
# JOBS_START_CAPACITY jobs a second until they have measured it, less what
# the creates it refuses cost (jobs/admission.py).
JOBS_MAX_DUE_PER_SECOND = (
    "auto"
    if envstr("JOBS_MAX_DUE_PER_SECOND", "auto") == "auto"
    else envint("JOBS_MAX_DUE_PER_SECOND", 0, minimum=0)
)
JOBS_START_CAPACITY = envint("JOBS_START_CAPACITY", 1300, minimum=1)
JOBS_MAX_LATENESS = envint("JOBS_MAX_LATENESS", 1, minimum=0)

# Jobs due together run as one task of up to JOBS_BATCH_SIZE jobs; the
# pusher takes up to a batch per worker from the queue at a time.
JOBS_BATCH_SIZE = envint("JOBS_BATCH_SIZE", 50, minimum=1, maximum=1000)
# After handing out fewer than a full load of due jobs, the pusher waits this
# long before the next: jobs falling due one by one are gathered into batches
# instead of running as one task each (0: take each the moment it is due).
JOBS_GATHER_SECONDS = envint("JOBS_GATHER_MS", 100, minimum=0, maximum=1000) / 1000
# The message each create queues for its job's run (jobs.queueing.RUN_JOBS)
# is stored as an empty file in the file queue: a name and no data to write.
JOBS_QUEUE_IMPLIED_TASK = "jobs.tasks.run_jobs"
Q_CLUSTER = {
    "name": envstr("JOBS_CLUSTER_NAME", "jobs"),
    "broker_class": (
        "redisstore.broker.RedisBroker" if JOBS_REDIS_URL else "filestore.broker.FileBroker"
    ),
    "workers": JOBS_WORKERS,
    "timeout": JOBS_TASK_TIMEOUT,
    "retry": JOBS_QUEUE_RETRY,
    "poll": 0.2,
    "bulk": JOBS_BATCH_SIZE * JOBS_WORKERS,
    "save_limit": -1,
    "cached": 60,
    "ack_failures": False,
    "max_attempts": 0,
    "scheduler": False,
    "catch_up": False,
    "label": "Jobs worker",
    "recycle": 500,
}

# --- Metrics and logs -------------------------------------------------------
# GET /metrics: "staff" (a staff login), "token" (Authorization: Bearer
# JOBS_METRICS_TOKEN, or a staff login), "open" (anyone who can reach the
# port), "off" (404, nothing recorded). Setting a token selects "token".
JOBS_METRICS_TOKEN = envstr("JOBS_METRICS_TOKEN", "")
JOBS_METRICS = envstr("JOBS_METRICS", "token" if JOBS_METRICS_TOKEN else "staff").lower()
if JOBS_METRICS not in {"staff", "token", "open", "off"}:
    raise ImproperlyConfigured(
        f"JOBS_METRICS={JOBS_METRICS!r} is not one of staff, token, open, off."
    )
if JOBS_METRICS == "token" and len(JOBS_METRICS_TOKEN) < 32:
    raise ImproperlyConfigured(
        "JOBS_METRICS=token needs a JOBS_METRICS_TOKEN of at least 32 characters."
    )
if JOBS_METRICS != "token" and JOBS_METRICS_TOKEN:
    # A token that is silently not checked would look like protection.
    raise ImproperlyConfigured(
        f"JOBS_METRICS_TOKEN is set but JOBS_METRICS={JOBS_METRICS}; use JOBS_METRICS=token."
    )
# Per-process metric files; keep it on a local disk when the data directory is shared.
JOBS_METRICS_DIR = envpath("JOBS_METRICS_DIR", JOBS_DATA_DIR / "metrics")

JOBS_LOG_FORMAT = envstr("JOBS_LOG_FORMAT", "text").lower()
if JOBS_LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"JOBS_LOG_FORMAT={JOBS_LOG_FORMAT!r} is not one of text, json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Puts job_id, batch_id and worker (see jobsite.logs.job_log_context) on each record.
    "filters": {"job_context": {"()": "jobsite.logs.JobContextFilter"}},
    "formatters": {
        "text": {
            "()": "jobsite.logs.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
        "json": {"()": "jobsite.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": JOBS_LOG_FORMAT,
            "filters": ["job_context"],
        }
    },
    "root": {"handlers": ["console"], "level": envstr("DJANGO_LOG_LEVEL", "INFO").upper()},
    "loggers": {"django-q": {"level": "WARNING", "propagate": True}},
}
