"""Operator surfaces against real services: GraphQL client, sync_schedules, overrides."""
