"""Tests of validibot.core.tasks."""
