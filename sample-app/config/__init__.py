"""Django project package: settings, URLs, WSGI entry point and the Celery app.

The Celery app is imported here so that ``@shared_task`` binds to it whenever
Django starts (web, manage.py) and so that ``celery -A config`` finds it.
"""

from .celery import app as celery_app

__all__ = ("celery_app",)
