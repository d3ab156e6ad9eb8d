from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError

from conversions.partitions import PartitioningError, click_partitions, clicks_partition


class Command(BaseCommand):
    help = (
        "Partition the clicks table by ranges of id, about a month of clicks each (PostgreSQL; docs/scaling.md, "
        "step 5). The table becomes the first partition in place; an hourly job adds the next ones."
    )

    def add_arguments(self, parser):
        parser.add_argument("--block", type=int, help="ids a partition holds (default: the last 30 days' clicks, "
                                                      "at least 1,000,000)")  # fmt: skip
        parser.add_argument("--lock-timeout-ms", type=int, default=2000,
                            help="give up if the lock is not granted in this time (default 2000)")  # fmt: skip
        parser.add_argument("--status", action="store_true", help="only list the partitions")

    def handle(self, *args, block, lock_timeout_ms, status, **options):
        if block is not None and block < 1:
            raise CommandError("--block must be a positive number of ids")
        try:
            partitions = (
                click_partitions() if status else clicks_partition(block=block, lock_timeout_ms=lock_timeout_ms)
            )
        except PartitioningError as error:
            raise CommandError(str(error)) from error
        except OperationalError as error:  # e.g. the lock not granted in time: that step was rolled back
            raise CommandError(
                f"{str(error).strip()}. The clicks table is not partitioned yet; run the command again."
            ) from error
        if not partitions:
            self.stdout.write("The clicks table is not partitioned.")
        for partition in partitions:
            lower = "the lowest id" if partition.lower is None else f"id {partition.lower}"
            self.stdout.write(f"{partition.name}: from {lower} up to id {partition.upper - 1}")
