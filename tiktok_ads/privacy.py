"""Erasure on the TikTok side: a person's events that have not been sent are skipped and emptied."""

from django.db.models import Q

from tiktok_ads.hashing import sha256_external_id
from tiktok_ads.models import TikTokEvent

NOT_SENT = (TikTokEvent.Status.QUEUED, TikTokEvent.Status.RETRYING, TikTokEvent.Status.FAILED)


def tiktok_events_erase(*, customer_ids: set[str], conversion_ids: list[int], click_ids: set[int], lead) -> int:
    """Events of this person still in the outbox become `skipped` ("erased") with an empty payload.

    Found by their stable ids (view_<click>, registration_<start>, <goal>_<conversion>) and by the
    hashed external id, which also catches events posted through the events API.
    """
    from conversions.models import BotStart, Click, Conversion

    event_ids = {f"view_{click_id}" for click_id in Click.objects.filter(pk__in=click_ids).values_list(
        "click_id", flat=True)}  # fmt: skip
    event_ids |= {f"{goal}_{public_id}" for goal, public_id in Conversion.objects.filter(pk__in=conversion_ids)
                  .values_list("goal", "public_id")}  # fmt: skip
    if lead is not None:
        event_ids |= {f"registration_{pk}" for pk in BotStart.objects.filter(lead=lead).values_list("pk", flat=True)}
    external_ids = [sha256_external_id(customer_id) for customer_id in customer_ids]
    person = Q(event_id__in=event_ids) | Q(payload__user__external_id__in=external_ids)
    return TikTokEvent.objects.filter(person, status__in=NOT_SENT).update(
        status=TikTokEvent.Status.SKIPPED, payload={}, last_message="erased"
    )
