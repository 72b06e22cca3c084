"""WSGI entry point, for management tools that expect one. Switchboard itself is served over ASGI
(config.asgi) because WebSockets and long-poll need it."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
