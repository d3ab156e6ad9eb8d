"""The pixel form of the admin: its settings plus a write-only access token."""

from django import forms

from tiktok_ads.models import Pixel


class PixelForm(forms.ModelForm):
    """The token is never rendered back (not even after a failed submit): the page only ever shows
    `token_hint`. The admin encrypts what is typed here; empty on change keeps the stored token."""

    access_token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "size": 60}),
        help_text="Write-only: stored encrypted, never shown again. A new token clears the invalid-token flag.",
    )

    class Meta:
        model = Pixel
        fields = [
            "name", "pixel_code", "advertiser_id", "is_active", "test_mode", "test_event_code", "enabled_events",
            "goal_events", "daily_quota",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        token_field = self.fields["access_token"]
        token_field.required = self.instance.pk is None
        if self.instance.pk is not None:
            token_field.help_text = (
                f"Stored token: {self.instance.token_hint or '…'}. Leave empty to keep it. {token_field.help_text}"
            )

    # An emptied JSON box means "none", not SQL NULL (the columns are NOT NULL).
    def clean_enabled_events(self):
        return self.cleaned_data.get("enabled_events") or []

    def clean_goal_events(self):
        return self.cleaned_data.get("goal_events") or {}
