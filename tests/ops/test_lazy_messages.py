"""Admin messages still reach the next page; a click or a postback never builds the message storage."""

import pytest

from conversions.models import Campaign

pytestmark = pytest.mark.django_db


def test_a_message_set_before_a_redirect_is_shown_on_the_next_page(admin_client, campaign):
    form = {"name": "Renamed campaign", "status": "active", "offer_url": "", "pixel": "", "notes": ""}

    response = admin_client.post(f"/admin/conversions/campaign/{campaign.pk}/change/", form, follow=True)

    assert response.redirect_chain and response.status_code == 200
    assert "Renamed campaign" in Campaign.objects.get().name
    page = response.content.decode()
    assert "was changed successfully" in page
    # shown once: the page after it has no message
    assert "was changed successfully" not in admin_client.get("/admin/conversions/campaign/").content.decode()


def test_a_click_builds_no_message_storage_and_sets_no_cookie(visit, link, monkeypatch):
    from django.contrib.messages.storage.fallback import FallbackStorage  # MESSAGE_STORAGE's default

    built = []
    original_init = FallbackStorage.__init__

    def counting_init(storage, request, *args, **kwargs):
        built.append(request.path)
        original_init(storage, request, *args, **kwargs)

    monkeypatch.setattr(FallbackStorage, "__init__", counting_init)

    response = visit("/l/tiktok_abc123")

    assert response.status_code == 200
    assert built == []
    assert "messages" not in response.cookies
