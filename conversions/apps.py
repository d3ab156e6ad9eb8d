from django.apps import AppConfig


class ConversionsConfig(AppConfig):
    name = "conversions"
    verbose_name = "Tracking and conversions"

    def ready(self):
        from conversions import schema  # noqa: F401 - registers the OpenAPI auth extensions
