"""A downstream command, as its author would write it: plain BaseCommand, no summary line."""

from datetime import timedelta

from django.contrib.sessions.models import Session
from django.core.management.base import BaseCommand
from django.utils import timezone


class Command(BaseCommand):
    help = "Delete sessions that expired more than a week ago."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, **options):
        stale = Session.objects.filter(expire_date__lt=timezone.now() - timedelta(days=7))
        if options["dry_run"]:
            self.stdout.write(f"Would delete {stale.count()} stale report(s).")
            return
        deleted, _ = stale.delete()
        self.stdout.write(f"Deleted {deleted} stale report(s).")
