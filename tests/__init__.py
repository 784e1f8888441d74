"""Test suite: mirrors the source tree; integration tests use real services."""
