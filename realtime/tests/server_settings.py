"""Settings for server-process tests: the project's settings, serving realtime.tests.server_app
with its heartbeat service instead of the project's application and services
($SERVER_TEST_SERVICES, comma-separated, overrides the services)."""

import os

from config.settings import *  # noqa: F403

ASGI_APPLICATION = "realtime.tests.server_app.application"
REALTIME_EMBEDDED_SERVICES = os.environ.get(
    "SERVER_TEST_SERVICES", "realtime.tests.server_app.heartbeat"
).split(",")
