"""Tests of validibot.tasks."""
