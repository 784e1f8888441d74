"""Tests against a real Docker engine (a private dockerd the session starts)."""
