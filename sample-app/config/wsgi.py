"""WSGI entry point: ``gunicorn config.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# Tests only: a release that crashes some seconds after it started (core.release.CRASH_FILE).
from core.release import arm_crash_switch  # noqa: E402

arm_crash_switch()
