"""The root ASGI application: every connection to Switchboard enters here.

http       long-poll routes (notifications), then everything else to Django's ASGI handler
websocket  origin check -> session + user -> per-user socket cap -> chat, notification and news
           sockets
channel    background worker channels, served by `manage.py runworker` (or in-process)
aprs       packets from the APRS-IS gateway (`manage.py aprs_gateway`)
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Set up Django (and the app registry) before importing anything that touches models.
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

import aprs_news.routing  # noqa: E402
import chat.routing  # noqa: E402
import notifications.routing  # noqa: E402
from aprs_news.consumers import APRSNewsConsumer  # noqa: E402
from config.logs import ConnectionIdMiddleware  # noqa: E402
from realtime.auth import AuthMiddlewareStack  # noqa: E402
from realtime.connection_limits import UserSocketLimit  # noqa: E402
from realtime.metrics import ConnectionMetricsMiddleware  # noqa: E402
from realtime.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from realtime.security import AllowedHostsOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                *notifications.routing.http_urlpatterns,
                re_path(r"", django_asgi_app),
            ]
        ),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                # At most REALTIME_MAX_SOCKETS_PER_USER sockets per user and process (4429).
                UserSocketLimit(
                    URLRouter(
                        [
                            *chat.routing.websocket_urlpatterns,
                            *notifications.routing.websocket_urlpatterns,
                            *aprs_news.routing.websocket_urlpatterns,
                        ]
                    )
                )
            )
        ),
        "channel": ChannelNameRouter(
            {
                **chat.routing.channel_routes,
                **notifications.routing.channel_routes,
                **aprs_news.routing.channel_routes,
            }
        ),
        "aprs": APRSNewsConsumer.as_asgi(),
    }
)

# Counts open connections by route and messages routed, for /metrics (config.health).
application = ConnectionMetricsMiddleware(application)
# Gives every request and WebSocket an id for its log lines (config/logs.py).
application = ConnectionIdMiddleware(application)

# Everything imported so far (Django, the apps, Daphne's and Twisted's modules) lives as long as the
# process. Moving it out of the garbage collector's reach means a full collection only walks what
# the process made since: on a server holding 200 chat sockets that cut the pauses of full
# collections from 60-110 ms to 20-50 ms, which showed directly in the p99 of chat deliveries
# (bench/README.md, "Whole stack: a chat room"). Objects frozen here are still freed by reference counting.
gc.collect()
gc.freeze()
# How often the collector runs from here on (settings.REALTIME_GC_THRESHOLDS): full collections
# less often than Python's default, which spent 40% of a reconnect storm's CPU walking the sockets
# already open (bench/README.md, "Round 3").
gc.set_threshold(*settings.REALTIME_GC_THRESHOLDS)
