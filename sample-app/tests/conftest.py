"""Test set-up: a throw-away environment, never the deployed one.

The variables below are *forced* (not defaulted), so running the suite inside a
deployed release with the production EnvironmentFile loaded cannot touch the
real database, state directory or broker.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

APP_ROOT = Path(__file__).resolve().parent.parent

_TMP = Path(tempfile.mkdtemp(prefix="demoapp-tests-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)

os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DATABASE_URL": f"sqlite:///{_TMP / 'test.sqlite3'}",
        "AYNA_STATE_DIR": str(_TMP / "state"),
        "REDIS_URL": "memory://",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DEBUG": "0",
    }
)
os.environ.pop("SAMPLE_FAIL_HEALTH", None)
os.environ.pop("CELERY_BEAT_SCHEDULE_FILE", None)

import django  # noqa: E402

django.setup()

from django.test.utils import setup_test_environment  # noqa: E402

setup_test_environment()


@pytest.fixture(scope="session")
def migrated_db() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


@pytest.fixture(scope="session")
def tmp_root() -> Path:
    return _TMP


@pytest.fixture
def app_root() -> Path:
    return APP_ROOT
