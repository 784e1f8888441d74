"""Tests of validibot.core."""
