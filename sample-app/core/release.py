"""Release identity and the health failure switch.

Shared by the web (Django), api (FastAPI) and worker (Celery) processes, and
free of Django so the api can import it without settings.

The release root is the directory that holds this code, found from this file's
own path with every symlink resolved: a process started in
``/opt/ayna/demoapp/releases/current`` (a symlink to ``v3``) reports ``v3``, and
keeps reporting ``v3`` after ``current`` is switched to ``v4``, until it is
restarted and loads the new code. The identity is read once, at import time.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Written into the release root by the deployer: {"release": "v3", "sha": "abc123..."}
RELEASE_FILE = ".ayna-release.json"
#: A file of this name in the release root makes /health fail (500): a "bad release".
FAIL_FILE = "FAIL_HEALTH"
#: Environment variable that makes /health fail (500) when set to 1/true/yes/on.
FAIL_ENV = "SAMPLE_FAIL_HEALTH"
#: A file of this name in the release root, "<seconds> <unit>", makes a process
#: of that systemd unit exit (status 3) that many seconds after it loaded the
#: code: a service that starts fine and crashes later.
CRASH_FILE = "CRASH_AFTER"

UNKNOWN = "unknown"
_TRUE = {"1", "true", "yes", "on"}


def release_root_for(code_file: str | os.PathLike[str]) -> Path:
    """Release root of a module file ``<root>/<package>/<module>.py``.

    Uses the real path (symlinks resolved), never the working directory.
    """
    return Path(os.path.realpath(code_file)).parent.parent


def read_release(root: str | os.PathLike[str]) -> dict[str, str]:
    """``{"release": ..., "sha": ...}`` from ``ROOT/.ayna-release.json``.

    A missing file gives ``"unknown"`` for both; so does an unreadable or
    malformed one (with a warning in the log).
    """
    path = Path(root) / RELEASE_FILE
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"release": UNKNOWN, "sha": UNKNOWN}
    except (OSError, ValueError) as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return {"release": UNKNOWN, "sha": UNKNOWN}
    if not isinstance(data, dict):
        logger.warning("%s is not a JSON object", path)
        return {"release": UNKNOWN, "sha": UNKNOWN}

    def field(name: str) -> str:
        value = data.get(name)
        return value if isinstance(value, str) and value else UNKNOWN

    return {"release": field("release"), "sha": field("sha")}


#: The release root of the code this process loaded (e.g. /opt/ayna/demoapp/releases/v3).
RELEASE_ROOT: Path = release_root_for(__file__)
#: The identity of that release, read once when this module was imported.
RELEASE: dict[str, str] = read_release(RELEASE_ROOT)


def failure_reason(root: str | os.PathLike[str] | None = None, port: int | None = None) -> str | None:
    """Why /health must fail (500), or None when it must not.

    Checked on every call: the environment variable ``SAMPLE_FAIL_HEALTH`` and
    the file ``FAIL_HEALTH`` in the release root (``RELEASE_ROOT`` unless
    ``root`` is given). A file that lists port numbers (one per line) fails
    only requests that arrived on one of those ports, so a test can make a
    release healthy as a candidate and failing once it serves for real.
    """
    if os.environ.get(FAIL_ENV, "").strip().lower() in _TRUE:
        return f"{FAIL_ENV} is set"
    base = Path(root) if root is not None else RELEASE_ROOT
    fail_file = base / FAIL_FILE
    if fail_file.exists():
        ports = {line.strip() for line in fail_file.read_text().splitlines() if line.strip()}
        if not ports:
            return f"{FAIL_FILE} exists in the release directory"
        if port is not None and str(port) in ports:
            return f"{FAIL_FILE} lists port {port}"
    return None


def health_payload(service: str, status: str = "ok", **extra: str) -> dict[str, str]:
    """The JSON body of /health: status, service, and the loaded release."""
    return {
        "status": status,
        "service": service,
        "release": RELEASE["release"],
        "sha": RELEASE["sha"],
        **extra,
    }


def own_unit(cgroup_file: str = "/proc/self/cgroup") -> str | None:
    """The systemd unit this process runs in (e.g. ``demoapp-web.service``), if any."""
    try:
        text = Path(cgroup_file).read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        for part in reversed(line.rsplit(":", 1)[-1].split("/")):
            if part.endswith(".service"):
                return part
    return None


def arm_crash_switch(root: str | os.PathLike[str] | None = None, unit: str | None = None) -> threading.Timer | None:
    """Starts the timer of the crash switch when ``CRASH_AFTER`` names this process's unit.

    Called once where a server loads the app (the master, with --preload);
    the exit takes the whole process down, as a crash would.
    """
    base = Path(root) if root is not None else RELEASE_ROOT
    try:
        words = (base / CRASH_FILE).read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return None
    if len(words) != 2 or words[1] != (unit if unit is not None else own_unit()):
        return None
    seconds = float(words[0])
    logger.warning("%s: this process exits in %s s", CRASH_FILE, seconds)
    timer = threading.Timer(seconds, os._exit, args=(3,))
    timer.daemon = True
    timer.start()
    return timer
