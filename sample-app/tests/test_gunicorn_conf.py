"""gunicorn.conf.py: no control socket by default; worker temp files in /dev/shm."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def test_control_socket_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUNICORN_CONTROL_SOCKET", raising=False)
    conf = runpy.run_path(str(CONF))
    assert conf["control_socket_disable"] is True
    assert "control_socket" not in conf


def test_control_socket_on_request(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GUNICORN_CONTROL_SOCKET", str(tmp_path / "g.ctl"))
    conf = runpy.run_path(str(CONF))
    assert conf["control_socket"] == str(tmp_path / "g.ctl")
    assert "control_socket_disable" not in conf
