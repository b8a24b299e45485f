from django.db import models
from django.utils import timezone


class Heartbeat(models.Model):
    """One run of the periodic ``core.tasks.heartbeat`` task (kept for a day)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    release = models.CharField(max_length=100, help_text="release the worker had loaded")
    sha = models.CharField(max_length=64)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.release}@{self.hostname}"
