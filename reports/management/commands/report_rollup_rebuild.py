from django.conf import settings
from django.core.management.base import BaseCommand

from reports.rollups import report_rollup_rebuild_days


class Command(BaseCommand):
    help = "Rebuild the report day tables for the current REPORT_TIME_ZONE (run it after changing the zone)."

    def handle(self, *args, **options):
        report_rollup_rebuild_days()
        self.stdout.write(f"Day tables rebuilt for {settings.REPORT_TIME_ZONE}.")
