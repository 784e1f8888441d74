"""Management commands of this app (each one a maintenance task or an operator tool)."""
