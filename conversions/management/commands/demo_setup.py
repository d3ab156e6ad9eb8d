# ruff: noqa: E501 - the printed curl lines are meant to be copied whole
"""Create a demo campaign, landing page, tracking link, admin user and API keys; print how to use them.

Idempotent: a second run reuses what exists (keys are kept in var/demo-keys.json, since only their
hashes are in the database).
"""

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from conversions.auth import api_key_create
from conversions.models import ApiKey, Campaign, LandingPage, TrafficSource

DEMO_UTM_ID = "tiktok_abc123"


class Command(BaseCommand):
    help = "Create demo data (campaign, link, admin user, API keys) and print the URLs and credentials."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default=settings.PUBLIC_BASE_URL)

    def handle(self, *args, base_url, **options):
        base_url = base_url.rstrip("/")
        secrets_file = settings.VAR_DIR / "demo-keys.json"
        saved = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}

        campaign, _ = Campaign.objects.get_or_create(
            name="Football January (demo)",
            defaults={"offer_url": "https://partner.example/offer?click_id={click_id}&sub={subid}"},
        )
        page, _ = LandingPage.objects.get_or_create(
            name="Demo channel",
            defaults={
                "title": "Football Insider",
                "description": "Daily match predictions and lootboxes. Join the bot in Telegram.",
            },
        )
        TrafficSource.objects.get_or_create(
            utm_id=DEMO_UTM_ID,
            defaults={
                "campaign": campaign,
                "name": "TikTok bio",
                "utm_source": "tiktok",
                "utm_medium": "bio",
                "utm_campaign": "football_jan_2025",
                "utm_content": "video_messi_goal",
                "creative": "video_messi_goal",
                "landing_page": page,
                "telegram_bot": "demo_tracker_bot",
            },
        )

        user_model = get_user_model()
        if "admin_password" not in saved or not user_model.objects.filter(username="admin").exists():
            saved["admin_password"] = secrets.token_urlsafe(9)
            admin, _ = user_model.objects.get_or_create(username="admin", defaults={"is_staff": True})
            admin.is_staff = admin.is_superuser = True
            admin.set_password(saved["admin_password"])
            admin.save()
        for scope in (ApiKey.Scope.INTAKE, ApiKey.Scope.MANAGEMENT):
            name = f"demo {scope}"
            if scope not in saved or not ApiKey.objects.filter(name=name, is_active=True).exists():
                _, saved[scope] = api_key_create(name=name, scope=scope)
        secrets_file.write_text(json.dumps(saved, indent=2))
        secrets_file.chmod(0o600)

        intake = saved[ApiKey.Scope.INTAKE]
        self.stdout.write(
            f"""
Demo ready.
  Admin:            {base_url}/admin/   user: admin   password: {saved["admin_password"]}
  Tracking link:    {base_url}/l/{DEMO_UTM_ID}
  Classic link:     {base_url}/click?campaign_id={campaign.pk}&subid=demo1
  Bot/partner key:  {intake}
  Management key:   {saved[ApiKey.Scope.MANAGEMENT]}
  OpenAPI schema:   {base_url}/api/schema

Open the tracking link, note the click id in the t.me/...?start=<click id> it sends you to, then play the bot:
  curl -X POST {base_url}/api/v1/utm/track/click -H 'Authorization: Api-Key {intake}' -H 'Content-Type: application/json' -d '{{"utm_id": "<click id>", "user_id": 123456789, "username": "john_doe", "first_name": "John", "language_code": "ru", "referrer": "telegram_bot_start"}}'
  curl -X POST {base_url}/api/v1/utm/webhook/conversion -H 'Authorization: Api-Key {intake}' -H 'Content-Type: application/json' -d '{{"utm_id": "{DEMO_UTM_ID}", "customer_id": "telegram_123456789", "amount": 5000, "product_name": "Gold Lootbox", "transaction_id": "demo-1"}}'
  curl -H 'Authorization: Api-Key {saved[ApiKey.Scope.MANAGEMENT]}' {base_url}/api/v1/utm/{DEMO_UTM_ID}/journey
"""
        )
