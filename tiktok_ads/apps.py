from django.apps import AppConfig


class TiktokAdsConfig(AppConfig):
    name = "tiktok_ads"
    verbose_name = "TikTok Ads"
