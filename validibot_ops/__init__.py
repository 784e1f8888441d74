"""Dagster code location for Validibot maintenance: everything is generated from the registry."""
