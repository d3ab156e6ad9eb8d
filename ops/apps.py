from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self):
        from ops import checks, logs  # noqa: F401 - registers the system checks

        logs.connect_celery_task_ids()
        logs.connect_request_end()
