"""The Celery app: ``celery -A config worker`` and ``celery -A config beat``.

Broker: Redis at REDIS_URL. Configuration comes from Django settings (the
CELERY_* names in config/settings.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery, beat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("demoapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class PersistentScheduler(beat.PersistentScheduler):
    """Celery's file-backed beat scheduler that first creates the directory of
    its schedule file (AYNA_STATE_DIR by default; see CELERY_BEAT_SCHEDULE_FILE)."""

    def setup_schedule(self) -> None:
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()
