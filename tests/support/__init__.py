"""Helpers shared by tests: real services started on demand, process cleanup by PID."""
