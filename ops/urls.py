from django.urls import path

from ops import apis, oauth_views, views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("tiktok/oauth/start", oauth_views.tiktok_oauth_start, name="tiktok-oauth-start"),
    path("tiktok/callback", oauth_views.tiktok_callback, name="tiktok-callback"),
    path("api/v1/tiktok/login-link", apis.TikTokLoginLinkApi.as_view(), name="tiktok-login-link"),
]
