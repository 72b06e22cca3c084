"""Notifications: per-user, stored, pushed live. Other apps create them through this API only:

    from notifications import notify, anotify, notify_all, anotify_all

    notify(users, *, verb, text, url="", actor=None) -> list[Notification]
        `users`: a User, a user id, or an iterable of either. Saves one notification each and
        pushes it to that user's open sockets and waiting long-polls after the transaction commits.
    notify_all(*, verb, text, url="", actor=None) -> str
        Every active user, in batches on the worker channel "notifications-fanout"; returns at once.
    anotify / anotify_all: the same, awaitable, for async consumers.

verb is a short machine word ("mention", "announcement", "bulletin"), text the human sentence,
url where clicking the notification leads. See notifications/services.py.
"""

from typing import Any

__all__ = ["anotify", "anotify_all", "notify", "notify_all"]


def __getattr__(name: str) -> Any:
    # Lazy: the package is imported while Django loads its apps, before models may be imported.
    if name in __all__:
        from notifications import services

        return getattr(services, name)
    raise AttributeError(f"module 'notifications' has no attribute {name!r}")
