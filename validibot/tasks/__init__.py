"""The task registry and what is computed from it alone (overrides, fire times, health, sync
plan, policies); it imports neither Django nor Dagster."""
