"""/api/integrations/tiktok-ads/… (the seed's "Endpoint-uri API")."""

from django.urls import path

from tiktok_ads import apis

urlpatterns = [
    path("connection", apis.ConnectionApi.as_view(), name="tiktok-connection"),
    path("connect", apis.ConnectApi.as_view(), name="tiktok-connect"),
    path("events", apis.EventsApi.as_view(), name="tiktok-events"),
    path("events/batch", apis.EventBatchApi.as_view(), name="tiktok-events-batch"),
    # `path:` because event ids are the caller's own and may contain "/".
    path("events/<path:event_id>", apis.EventStatusApi.as_view(), name="tiktok-event-status"),
]
