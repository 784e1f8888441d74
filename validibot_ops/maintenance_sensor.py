"""``validibot_maintenance``: shows maintenance mode in the UI and ends it at ``--until``.

Every 30 s it reads the maintenance row (Django, the single source of truth; see
``validibot_ops/maintenance.py``). Its skip reason is the banner: Automation -> Sensors ->
``validibot_maintenance`` says ``MAINTENANCE ON: <reason> (by <author> since ..., until ...)``
or ``maintenance off``. Once ``until`` has passed it restores the recorded schedule states,
turns maintenance off and sends one alert saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg

from validibot_ops.alerts import RECOVERED, Alert, build_channels, deliver

MAINTENANCE_SENSOR_NAME = "validibot_maintenance"
MAINTENANCE_INTERVAL_SECONDS = 30
MAINTENANCE_ENDED = RECOVERED
"""Logged at info level, like a recovery: the end of maintenance is good news."""

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def end_if_due(instance: dg.DagsterInstance, now: datetime) -> tuple[str, Alert | None]:
    """One tick: the banner text, and the alert to send if maintenance ended just now."""
    from django.db import DatabaseError

    from validibot.operations import maintenance
    from validibot_ops.maintenance import restore

    try:
        window = maintenance.current()
    except DatabaseError as exc:  # not migrated, or down: say so, do not crash the tick
        return f"maintenance state unreadable ({type(exc).__name__}: {exc})", None
    if window is None:
        return "maintenance off", None
    if maintenance.is_active(window, now):
        return f"MAINTENANCE ON: {maintenance.window_text(window)}", None
    changed = restore(instance, window.prior_states)
    maintenance.finish()
    text = (
        f"maintenance ended at {window.until.isoformat() if window.until else now.isoformat()} "
        f"({window.reason}, by {window.author}); {len(changed)} schedule(s) restored"
    )
    alert = Alert(kind=MAINTENANCE_ENDED, task="*", status="MAINTENANCE_ENDED", summary=text)
    return text, alert


def build_maintenance_sensor(clock: Clock = _utc_now) -> dg.SensorDefinition:
    @dg.sensor(
        name=MAINTENANCE_SENSOR_NAME,
        minimum_interval_seconds=MAINTENANCE_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"django"},
        description="Maintenance mode (`validibot-ops maintenance on|off|status`): this "
        "sensor's latest tick says whether it is on, why, by whom and until when; at --until "
        "it restores the schedules it paused.",
    )
    def _maintenance(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        try:
            context.resources.django.ensure_django()
        except Exception as exc:  # noqa: BLE001  (a banner that cannot read says why)
            return dg.SkipReason(f"maintenance state unreadable: Django: {exc}")
        from django.db import connections

        try:
            text, alert = end_if_due(context.instance, clock())
        finally:
            connections.close_all()  # a sensor process must not keep a connection open
        if alert is not None:
            channels = build_channels(prepare_django=context.resources.django.ensure_django)
            deliver(alert, channels, context.log)
        return dg.SkipReason(text)

    return _maintenance
