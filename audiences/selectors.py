"""Reads for audiences: member counts by state, what the beat job must sync, the last runs."""

from django.db.models import Count, Exists, Max, OuterRef, Q

from audiences.models import Audience, AudienceMember, AudienceSync, CustomerFileImport

State = AudienceMember.State
RECENT_SYNCS = 10


def empty_counts() -> dict[str, int]:
    return {state: 0 for state in State.values}


def member_counts(audience_ids: list[int]) -> dict[int, dict[str, int]]:
    """{audience id: {state: members}} for several audiences in one query (states with none are 0)."""
    counts = {audience_id: empty_counts() for audience_id in audience_ids}
    rows = (
        AudienceMember.objects.filter(audience_id__in=audience_ids)
        .values_list("audience_id", "state")
        .annotate(members=Count("id"))
        .order_by()
    )
    for audience_id, state, members in rows:
        counts[audience_id][state] = members
    return counts


def audiences_to_sync() -> list[int]:
    """Auto-sync audiences with something to do: every rule audience (its rule may have new matches),
    audiences not at TikTok yet, and audiences with pending members. Ones TikTok refused for good, and
    those of a pixel whose token TikTok rejected, wait for a person (the admin's "Sync now", a new token)."""
    pending = AudienceMember.objects.filter(
        audience_id=OuterRef("pk"), state__in=[State.PENDING_ADD, State.PENDING_REMOVE]
    )
    return list(
        Audience.objects.filter(auto_sync=True, pixel__token_invalid=False)
        .exclude(status=Audience.Status.FAILED)
        # A lookalike waits for its source to reach TikTok; running it now would only record a failure.
        .exclude(kind=Audience.Kind.LOOKALIKE, lookalike_source__tiktok_audience_id="")
        .filter(Q(kind=Audience.Kind.RULE) | Q(tiktok_audience_id="") | Exists(pending))
        .order_by("id")
        .values_list("pk", flat=True)
    )


def recent_syncs(audience: Audience, limit: int = RECENT_SYNCS) -> list[AudienceSync]:
    return list(AudienceSync.objects.filter(audience=audience).order_by("-id")[:limit])


def last_import(audience: Audience) -> CustomerFileImport | None:
    return CustomerFileImport.objects.filter(audience=audience).order_by("-id").first()


def last_syncs_by_audience(audience_ids: list[int]) -> dict[int, AudienceSync]:
    """The latest run of each audience, for a page of audiences (two queries)."""
    last_ids = (
        AudienceSync.objects.filter(audience_id__in=audience_ids)
        .values("audience_id")
        .annotate(last_id=Max("id"))
        .values_list("last_id", flat=True)
    )
    return {sync.audience_id: sync for sync in AudienceSync.objects.filter(pk__in=list(last_ids))}
