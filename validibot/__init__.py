"""Validibot's Django project: the data the maintenance tasks act on and the commands that act."""
