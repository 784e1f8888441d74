"""The shared base every app builds on: the maintenance command base and its batch loop, locks,
the settings checks, and Django's session cleanup (no app of ours owns that table)."""
