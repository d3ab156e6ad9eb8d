"""Operations data: the optional TikTok Login Kit link between a Telegram user and a TikTok account."""

from django.db import models


class TikTokAccountLink(models.Model):
    """A Telegram user who authorised our TikTok app (Login Kit). One TikTok account per Telegram user;
    linking again replaces it. TikTok's access and refresh tokens are not kept: the link needs them once,
    to read the account's open_id and display name."""

    telegram_user_id = models.BigIntegerField(unique=True)
    open_id = models.CharField(max_length=128, db_index=True, help_text="TikTok's id of the user for our app.")
    union_id = models.CharField(max_length=128, blank=True, help_text="Same user across the developer's apps.")
    display_name = models.CharField(max_length=200, blank=True)
    avatar_url = models.URLField(max_length=1000, blank=True)
    scopes = models.CharField(max_length=200, blank=True, help_text="What the user granted, comma-separated.")
    linked_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-linked_at"]
        verbose_name = "TikTok account link"

    def __str__(self):
        return f"{self.telegram_user_id} ↔ {self.display_name or self.open_id}"
