import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracker.settings")
django_application = get_wsgi_application()

from landing.click_handler import with_click_handler  # noqa: E402 (needs the settings configured above)

application = with_click_handler(django_application)
