"""Audit app: the audit log, and its retention (archive, verify, then delete)."""
