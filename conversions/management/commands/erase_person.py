from django.core.management.base import BaseCommand, CommandError

from conversions.privacy import person_erase


class Command(BaseCommand):
    help = "Erase everything personal about one Telegram user or customer id (GDPR erasure)."

    def add_arguments(self, parser):
        parser.add_argument("--telegram-user-id", type=int)
        parser.add_argument("--customer-id", default="")

    def handle(self, *args, telegram_user_id, customer_id, **options):
        if telegram_user_id is None and not customer_id:
            raise CommandError("Give --telegram-user-id or --customer-id.")
        report = person_erase(telegram_user_id=telegram_user_id, customer_id=customer_id)
        self.stdout.write(
            f"Erased: {report.leads} Telegram user, {report.conversions} conversions, {report.clicks} clicks, "
            f"{report.tiktok_events} unsent TikTok events, {report.audience_members} audience memberships."
        )
