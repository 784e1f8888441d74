"""Tests of validibot.retention."""
