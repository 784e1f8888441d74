"""Tests of the Django project (run on SQLite and on PostgreSQL)."""
