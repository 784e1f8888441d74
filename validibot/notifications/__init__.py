"""Periodic emails: the handler registry downstream packages fill, and the command that runs it."""
