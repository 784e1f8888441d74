"""Tag and key names shared by jobs, schedules, sensors, the CLI and the HTTP trigger."""

TASK_TAG = "validibot/task"
"""Every run of a maintenance job carries its registry id; dagster.yaml limits it to 1 at a time."""

TRIGGER_TAG = "validibot/trigger"
"""Which surface started the run: schedule, ui, cli, graphql, http, demo, retry (every job
defaults it to ``manual``; the op records the resolved value: validibot.tasks.triggers)."""

OVERRIDE_TAG = "validibot/override"
"""Set on schedules whose cron or enabled state comes from the incident overrides file."""

CELERY_QUEUE_TAG = "dagster-celery/queue"
"""dagster-celery routes each step to the queue named by this op tag."""

MAX_RUNTIME_TAG = "dagster/max_runtime"
"""Run monitoring fails a run that exceeds this many seconds (the task's hard time limit)."""

ASSET_PREFIX = "validibot_maintenance"
"""Asset key prefix of the per-task assets whose materializations plot each run's counts."""
