"""Scheduled-task registry and the plain callables that run registry tasks."""
