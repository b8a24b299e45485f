"""Django settings, read entirely from the environment.

Required: SECRET_KEY, DATABASE_URL (the deployer sets both; a missing one fails
at start with a message naming it). Everything else has a default. See
README.md for the full list.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# The release root (e.g. /opt/ayna/demoapp/releases/v3), symlinks resolved.
BASE_DIR = Path(__file__).resolve().parent.parent


def _required(name: str, hint: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"environment variable {name} is not set: {hint}")
    return value


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    value = value.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"environment variable {name}={value!r} is not a boolean (use 1 or 0)")


def _list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"environment variable {name}={value!r} is not an integer") from None


# ------------------------------------------------------------------ core

SECRET_KEY = _required(
    "SECRET_KEY",
    "set it to a long random string in the service's EnvironmentFile "
    "(/opt/ayna/{project}/shared/.env.{stage})",
)
DEBUG = _bool("DEBUG", False)
ALLOWED_HOSTS = _list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = _list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "core",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# ------------------------------------------------------------------ database

# postgresql://user:pass@127.0.0.1:5432/demoapp (psycopg 3) or sqlite:////abs/path/db.sqlite3
DATABASES = {
    "default": dj_database_url.parse(
        _required(
            "DATABASE_URL",
            "e.g. postgresql://user:pass@127.0.0.1:5432/demoapp or sqlite:////opt/ayna/{project}/shared/db.sqlite3",
        ),
        conn_max_age=_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of
    # one failing. WAL (a page that reads never waits for a writer) is a
    # property of the database file, set once after each migrate
    # (core.apps): a PRAGMA on every new connection ran before any view could
    # shorten the 5 s busy timeout, so fresh workers opening their
    # connections while another process held the lock waited 5 s each.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ------------------------------------------------------------------ i18n / time

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ------------------------------------------------------------------ static files

# Collected per release (`manage.py collectstatic` in the release directory) and
# served by WhiteNoise from the web process itself: no proxy needed.
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# ------------------------------------------------------------------ runtime state

# Where the worker writes its heartbeat file and beat its schedule. Persistent
# across releases: in the standard layout (<project>/releases/<release>) the
# default is <project>/shared/state; elsewhere (a checkout) <checkout>/var/state.
if BASE_DIR.parent.name == "releases":
    _default_state_dir = BASE_DIR.parent.parent / "shared" / "state"
else:
    _default_state_dir = BASE_DIR / "var" / "state"
AYNA_STATE_DIR = Path(os.environ.get("AYNA_STATE_DIR", "").strip() or _default_state_dir)

# ------------------------------------------------------------------ celery

REDIS_URL = os.environ.get("REDIS_URL", "").strip() or "redis://127.0.0.1:6379/0"

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "config.celery:PersistentScheduler"
CELERY_BEAT_SCHEDULE_FILENAME = str(
    os.environ.get("CELERY_BEAT_SCHEDULE_FILE", "").strip() or AYNA_STATE_DIR / "celerybeat-schedule"
)
HEARTBEAT_INTERVAL = 30.0
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {
        "task": "core.tasks.heartbeat",
        "schedule": HEARTBEAT_INTERVAL,
        # A heartbeat nobody ran in time is dropped, not piled up.
        "options": {"expires": HEARTBEAT_INTERVAL - 5},
    },
}

# ------------------------------------------------------------------ logging

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO").upper()},
}
