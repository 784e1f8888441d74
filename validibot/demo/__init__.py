"""Seed data for the demo."""
