from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


def use_wal(using: str = "default", **kwargs: object) -> None:
    """Puts a SQLite database in WAL mode (kept in the file): readers never wait for a writer."""
    connection = connections[using]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")


class CoreConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "core"
    verbose_name = "Demo app core"

    def ready(self) -> None:
        post_migrate.connect(use_wal, sender=self)
