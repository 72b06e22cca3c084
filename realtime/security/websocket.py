"""Django Channels' import path for the origin checks (``channels.security.websocket``), so a
Channels application ports by renaming ``channels`` to ``realtime``. The code is in
:mod:`realtime.security`."""

from realtime.security import AllowedHostsOriginValidator, OriginValidator

__all__ = ["AllowedHostsOriginValidator", "OriginValidator"]
