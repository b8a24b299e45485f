from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings

from core import release
from core.models import Heartbeat
from core.tasks import heartbeat


def test_heartbeat_writes_row_and_file(migrated_db: None) -> None:
    before = Heartbeat.objects.count()
    # .apply() runs the task in this process through Celery (no broker needed).
    info = heartbeat.apply().get()
    assert Heartbeat.objects.count() == before + 1
    row = Heartbeat.objects.first()
    assert row.release == release.RELEASE["release"]
    data = json.loads((Path(settings.AYNA_STATE_DIR) / "heartbeat.json").read_text())
    assert data == info
    assert data["release"] == release.RELEASE["release"]


def test_beat_scheduler_creates_its_directory(tmp_path: Path) -> None:
    from config.celery import PersistentScheduler, app

    schedule = tmp_path / "not" / "yet" / "celerybeat-schedule"
    sched = PersistentScheduler(app=app, schedule_filename=str(schedule))
    try:
        assert schedule.parent.is_dir()
        assert "heartbeat" in sched.schedule
    finally:
        sched.close()
