"""Retention app: purging expired submissions and outputs, and retrying failed purges."""
