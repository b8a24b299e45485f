from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from . import release
from .models import Heartbeat

logger = logging.getLogger(__name__)

SERVICE = "web"


#: How long a page waits for a SQLite lock, in milliseconds. In WAL mode a
#: read waits only while a connection recovers or cleans up the database
#: (after a process that had it open was stopped), which on a busy disk took
#: over 5 s: requests answered after exactly the default 5 s busy timeout, as
#: long as a client waits. A page answers sooner without the heartbeat.
PAGE_LOCK_WAIT_MS = 1000


def _short_lock_wait() -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {PAGE_LOCK_WAIT_MS}")


def check_database() -> str | None:
    """None if the default database answers ``SELECT 1``, else the error."""
    try:
        _short_lock_wait()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("health: database check failed: %s", exc)
        return f"database unavailable: {type(exc).__name__}"
    return None


@csrf_exempt  # GET only: a POST gets 405, not a CSRF 403
@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 {"status":"ok","service":"web","release":...,"sha":...}.

    500 when the failure switch is on (SAMPLE_FAIL_HEALTH=1 or FAIL_HEALTH in
    the release root), 503 when the database does not answer.
    """
    reason = release.failure_reason(port=int(request.get_port()))
    if reason:
        return JsonResponse(release.health_payload(SERVICE, "failing", error=reason), status=500)
    error = check_database()
    if error:
        return JsonResponse(release.health_payload(SERVICE, "error", error=error), status=503)
    return JsonResponse(release.health_payload(SERVICE))


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    try:
        _short_lock_wait()
        last = Heartbeat.objects.first()
    except DatabaseError:
        last = None
    return render(request, "core/index.html", {"release": release.RELEASE, "last_heartbeat": last})
