"""Deprecated alias of ``cleanup_orphaned_containers`` (the command is named after its task id)."""

from validibot.validations.management.commands.cleanup_orphaned_containers import (
    Command as CleanupOrphanedContainers,
)


class Command(CleanupOrphanedContainers):
    help = "Deprecated alias of cleanup_orphaned_containers. " + CleanupOrphanedContainers.help
