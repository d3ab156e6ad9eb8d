from django.contrib import admin
from django.urls import path

from reports import views

# Report pages inside the admin (staff only), mounted at /admin/reports/.
app_name = "reports"
urlpatterns = [
    path("", admin.site.admin_view(views.report), name="report"),
    path("dashboard/", admin.site.admin_view(views.dashboard), name="dashboard"),
    path("journey/click/<str:click_id>/", admin.site.admin_view(views.journey_of_click), name="journey-click"),
    path("journey/conversion/<str:public_id>/", admin.site.admin_view(views.journey_of_conversion),
         name="journey-conversion"),
    path("journey/lead/<int:lead_id>/", admin.site.admin_view(views.journey_of_lead), name="journey-lead"),
]  # fmt: skip
