"""Submissions app: what users send for validation, with a retention policy and an expiry."""
