"""/api/integrations/tiktok-ads/audiences… The prefix is mounted without a trailing slash, so the
audience's own paths hang under "/" (a route that starts and ends with "/", which Django accepts)."""

from django.urls import include, path

from audiences import apis

audience_patterns = [
    path("<int:audience_id>", apis.AudienceDetailApi.as_view(), name="audience-detail"),
    path("<int:audience_id>/sync", apis.AudienceSyncApi.as_view(), name="audience-sync"),
    path("<int:audience_id>/lookalikes", apis.LookalikesApi.as_view(), name="audience-lookalikes"),
    path("<int:audience_id>/customer-file", apis.CustomerFileApi.as_view(), name="audience-customer-file"),
]

urlpatterns = [
    path("", apis.AudiencesApi.as_view(), name="audiences"),
    path("/", include(audience_patterns)),
]
