import re

from django.core.management.base import BaseCommand, CommandError

from conversions.privacy import clicks_purge


def days(value: str) -> int:
    match = re.fullmatch(r"(\d+)d?", value.strip())
    if not match:
        raise CommandError(f"--older-than takes days, e.g. 90d, not {value!r}")
    return int(match.group(1))


class Command(BaseCommand):
    help = "Delete clicks older than N days; strip the personal data of those a start or conversion refers to."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="Days, e.g. 90d")

    def handle(self, *args, older_than, **options):
        report = clicks_purge(older_than_days=days(older_than))
        self.stdout.write(f"Deleted {report.deleted} clicks; stripped personal data from {report.stripped}.")
