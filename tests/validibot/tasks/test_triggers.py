"""Every run resolves to one trigger, whichever surface (ours or Dagster's) created it."""

from __future__ import annotations

import pytest

from validibot.tasks.triggers import TRIGGER_TAG, trigger_of


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({TRIGGER_TAG: "schedule", "dagster/schedule_name": "x_schedule"}, "schedule"),
        ({TRIGGER_TAG: "manual", "dagster/schedule_name": "x_schedule"}, "schedule"),
        ({TRIGGER_TAG: "manual", "dagster/from_ui": "true"}, "ui"),
        ({TRIGGER_TAG: "manual"}, "cli"),
        ({}, "cli"),
        ({TRIGGER_TAG: "graphql"}, "graphql"),
        ({TRIGGER_TAG: "http"}, "http"),
        ({TRIGGER_TAG: "demo"}, "demo"),
        # A re-execution or run retry copies its parent's tags, trigger included.
        ({TRIGGER_TAG: "demo", "dagster/parent_run_id": "abc"}, "retry"),
        ({TRIGGER_TAG: "ui", "dagster/parent_run_id": "abc", "dagster/from_ui": "true"}, "retry"),
        ({TRIGGER_TAG: "airflow"}, "airflow"),
    ],
)
def test_trigger_of(tags, expected):
    assert trigger_of(tags) == expected
