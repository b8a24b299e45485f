from django.contrib import admin

from .models import Heartbeat


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("created_at", "release", "sha", "hostname", "pid")
    list_filter = ("release",)
    readonly_fields = ("created_at", "release", "sha", "hostname", "pid")
