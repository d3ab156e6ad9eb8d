from django.conf import settings
from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from conversions import apis, links_api
from landing import views as landing_views
from tracker import login_throttle

router = SimpleRouter()
router.trailing_slash = "/?"  # both /api/v1/links and /api/v1/links/
router.register("campaigns", links_api.CampaignViewSet)
router.register("landing-pages", links_api.LandingPageViewSet)
router.register("links", links_api.TrafficSourceViewSet)

api_v1 = [
    path("utm/track/click", apis.TrackStartApi.as_view(), name="track-start"),
    path("utm/webhook/conversion", apis.ConversionWebhookApi.as_view(), name="conversion-webhook"),
    path("utm/webhook/conversions", apis.ConversionBatchWebhookApi.as_view(), name="conversion-batch-webhook"),
    path("utm/<str:utm_id>/journey", apis.LinkJourneyApi.as_view(), name="link-journey"),
    path("clicks/<str:click_id>/journey", apis.ClickJourneyApi.as_view(), name="click-journey"),
    path("privacy/erase", apis.ErasureApi.as_view(), name="privacy-erase"),
    path("", include(router.urls)),
]

urlpatterns = [
    path("", lambda request: HttpResponseRedirect("/admin/")),
    path("l/<str:utm_id>", landing_views.link_click, name="link-click"),
    path("click", landing_views.classic_click, name="classic-click"),
    path("postback", apis.PostbackApi.as_view(), name="postback"),
    path("api/v1/", include(api_v1)),
    path("api/integrations/tiktok-ads/audiences", include("audiences.urls")),
    path("api/integrations/tiktok-ads/", include("tiktok_ads.urls")),
    path("api/v1/reports/", include("reports.urls")),
    path("", include("ops.urls")),
    path("api/schema", SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]), name="schema"),
    path("admin/reports/", include("reports.admin_urls")),
    path("admin/login/", login_throttle.throttled_login, name="admin-login"),
    path("admin/", admin.site.urls),
]

if settings.BENCH_ENDPOINTS:  # bench/clicks.py's baseline: a bare 302 without tracking; off in production
    from landing import bench_views

    urlpatterns.append(path("bench/redirect", bench_views.bare_redirect, name="bench-redirect"))

handler404 = "tracker.errors.not_found"
handler500 = "tracker.errors.server_error"
