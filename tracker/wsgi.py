import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracker.settings")
django_application = get_wsgi_application()

from tracker.hot_paths import with_hot_path_handler  # noqa: E402 (needs the settings configured above)

application = with_hot_path_handler(django_application)
