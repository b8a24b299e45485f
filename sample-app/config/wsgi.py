"""WSGI entry point: ``gunicorn config.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()


def _warm() -> None:
    """Load once, before gunicorn forks (--preload), what each worker's first
    request would load on its own: every view module (through the URLconf) and
    the compiled page template. A fresh worker then answers its first request
    as fast as its hundredth, which matters when a release starts new workers
    on a busy host."""
    from django.template.loader import get_template
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - the property imports the views
    get_template("core/index.html")


_warm()

# Tests only: a release that crashes some seconds after it started (core.release.CRASH_FILE).
from core.release import arm_crash_switch  # noqa: E402

arm_crash_switch()
