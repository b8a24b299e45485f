from __future__ import annotations

import json
import os
import socket
import tempfile
from datetime import timedelta
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import release
from .models import Heartbeat

#: Written (atomically) on every heartbeat, in AYNA_STATE_DIR.
HEARTBEAT_FILE = "heartbeat.json"
KEEP = timedelta(days=1)


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@shared_task(name="core.tasks.heartbeat")
def heartbeat() -> dict:
    """Scheduled by beat every 30 s: records that the worker is alive.

    Adds a ``Heartbeat`` row (rows older than a day are removed) and writes
    ``$AYNA_STATE_DIR/heartbeat.json`` with the time, the release the worker
    loaded, its host name and pid.
    """
    now = timezone.now()
    info = {
        "time": now.isoformat(),
        "release": release.RELEASE["release"],
        "sha": release.RELEASE["sha"],
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
    }
    Heartbeat.objects.create(
        created_at=now,
        release=info["release"],
        sha=info["sha"],
        hostname=info["hostname"],
        pid=info["pid"],
    )
    Heartbeat.objects.filter(created_at__lt=now - KEEP).delete()
    write_json_atomic(Path(settings.AYNA_STATE_DIR) / HEARTBEAT_FILE, info)
    return info
