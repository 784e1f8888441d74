"""Audit-log retention tests."""
