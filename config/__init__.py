"""Django configuration package for Validibot (settings, URLs, WSGI)."""
