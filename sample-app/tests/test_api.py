from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import app
from core import release


@pytest.fixture
def client() -> TestClient:
    return TestClient(app)


def test_health_ok(client: TestClient) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "ok",
        "service": "api",
        "release": release.RELEASE["release"],
        "sha": release.RELEASE["sha"],
    }


def test_health_fails_with_env_switch(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_FAIL_HEALTH", "1")
    resp = client.get("/health")
    assert resp.status_code == 500
    assert resp.json()["service"] == "api"
    assert resp.json()["status"] == "failing"


def test_health_env_switch_off_values(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_FAIL_HEALTH", "0")
    assert client.get("/health").status_code == 200


def test_health_fails_with_file_in_release_root(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(release, "RELEASE_ROOT", tmp_path)
    assert client.get("/health").status_code == 200
    (tmp_path / "FAIL_HEALTH").touch()
    assert client.get("/health").status_code == 500


def test_gunicorn_worker_classes_import() -> None:
    import warnings

    from uvicorn_worker import UvicornWorker

    assert UvicornWorker.__name__ == "UvicornWorker"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from uvicorn.workers import UvicornWorker as Deprecated
    assert Deprecated.__name__ == "UvicornWorker"
