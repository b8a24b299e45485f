from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import OperationalError, connection
from django.test import Client, override_settings

from core import release


@pytest.fixture
def client() -> Client:
    return Client()


def test_health_ok(client: Client) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp["Content-Type"] == "application/json"
    assert resp.json() == {
        "status": "ok",
        "service": "web",
        "release": release.RELEASE["release"],
        "sha": release.RELEASE["sha"],
    }
    assert "no-store" in resp["Cache-Control"]


def test_health_fails_with_env_switch(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_FAIL_HEALTH", "1")
    resp = client.get("/health")
    assert resp.status_code == 500
    assert resp.json()["status"] == "failing"
    assert resp.json()["service"] == "web"


def test_health_fails_with_file_in_release_root(
    client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Point the release root elsewhere: the suite may run inside a live release.
    monkeypatch.setattr(release, "RELEASE_ROOT", tmp_path)
    assert client.get("/health").status_code == 200
    (tmp_path / "FAIL_HEALTH").touch()
    assert client.get("/health").status_code == 500


def test_health_503_when_database_is_down(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken)
    resp = client.get("/health")
    assert resp.status_code == 503
    assert resp.json()["status"] == "error"
    assert "database" in resp.json()["error"]


def test_health_rejects_post() -> None:
    # 405 even with CSRF checks on (as in production), not a CSRF 403.
    assert Client(enforce_csrf_checks=True).post("/health").status_code == 405


@override_settings(
    STORAGES={
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
)
def test_index_page(client: Client, migrated_db: None) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert b"demoapp" in resp.content
    assert b"/static/core/site.css" in resp.content


def _django_setup(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL"])
def test_settings_fail_fast_without_required_variable(name: str, app_root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != name}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    out = _django_setup(env, app_root)
    assert out.returncode != 0
    assert f"environment variable {name} is not set" in out.stderr


def test_settings_defaults() -> None:
    from django.conf import settings

    assert settings.DEBUG is False
    assert settings.STATIC_ROOT == release.RELEASE_ROOT / "staticfiles"
    assert settings.CELERY_BROKER_URL == "memory://"
    assert "core.tasks.heartbeat" == settings.CELERY_BEAT_SCHEDULE["heartbeat"]["task"]
    assert settings.CELERY_BEAT_SCHEDULE["heartbeat"]["schedule"] == 30.0


@override_settings(
    STORAGES={
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
)
@pytest.mark.parametrize("path", ["/", "/health"])
def test_pages_wait_at_most_one_second_for_a_sqlite_lock(client: Client, migrated_db: None, path: str) -> None:
    # The load tests' clients give up after 5 s, SQLite's default busy timeout.
    assert connection.vendor == "sqlite"  # conftest's DATABASE_URL
    assert client.get(path).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == 1000


def test_sqlite_is_in_wal_mode_after_migrate_and_new_connections_run_no_pragma(migrated_db: None) -> None:
    from django.conf import settings
    from django.db import connections

    assert "init_command" not in settings.DATABASES["default"].get("OPTIONS", {})
    fresh = connections.create_connection("default")
    try:
        with fresh.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
    finally:
        fresh.close()
