"""Validations app: runs of a validator over a submission, their outputs and callbacks."""
