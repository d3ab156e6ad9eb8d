from django.urls import path  # noqa: F401

# Report pages inside the admin (staff only), mounted at /admin/reports/.
urlpatterns = []
