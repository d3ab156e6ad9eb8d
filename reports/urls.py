from django.urls import path

from reports import apis

urlpatterns = [path("", apis.ReportApi.as_view(), name="report-api")]
