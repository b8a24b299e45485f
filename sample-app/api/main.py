"""FastAPI service.

Run with ``uvicorn api.main:app`` or under gunicorn with
``-k uvicorn_worker.UvicornWorker`` (or the deprecated ``uvicorn.workers.UvicornWorker``).
Does not use Django: it needs none of the Django settings.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from core import release

SERVICE = "api"

app = FastAPI(title="demoapp api", version=release.RELEASE["release"])

_NO_STORE = {"Cache-Control": "no-store"}


@app.get("/health")
def health(request: Request) -> JSONResponse:
    """200 {"status":"ok","service":"api","release":...,"sha":...}; 500 when the
    failure switch is on (SAMPLE_FAIL_HEALTH=1 or FAIL_HEALTH in the release root)."""
    reason = release.failure_reason(port=request.url.port)
    if reason:
        return JSONResponse(release.health_payload(SERVICE, "failing", error=reason), status_code=500, headers=_NO_STORE)
    return JSONResponse(release.health_payload(SERVICE), headers=_NO_STORE)


@app.get("/")
def index() -> dict[str, str]:
    return {"service": SERVICE, **release.RELEASE}
