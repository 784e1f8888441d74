"""Tests of validibot.validations."""
