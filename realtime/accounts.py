"""Open sockets follow their account: a change that ends a login ends the sockets that rode on it.

Every authenticated `JsonFrameConsumer` joins its account's group, ``account_group(user_id)``.
When the account changes in a way that matters for open connections, one layer message goes to
that group, so it reaches the account's sockets in every process::

    {"type": "account.changed", "reason": "logged_out", "session": "<sha256 of the session key>"}

Reasons: ``logged_out`` (that one session ended: only sockets on it close), ``password_changed``,
``deactivated``, ``deleted`` and ``staff_removed``. Each socket then re-checks its own login the
way Django checks a request (the session still exists, names this user, carries the user's
current auth hash, the user is active) and closes if it no longer holds; see
`JsonFrameConsumer.on_account_changed`. A password changed in a view is followed by
`update_session_auth_hash()` for the session that changed it, a moment after the save, so a
session whose hash is stale is re-checked once more after `RECHECK_GRACE_SECONDS` before its
socket closes.

The Django signals are connected by `connect_signals()` (from the realtime app's ready()):
``user_logged_out``, and ``pre_save``/``post_save``/``post_delete`` of the user model, which
compare the saved password, ``is_active`` and ``is_staff`` with the stored ones. The message is
sent after the transaction commits, from sync code or from a running event loop alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings

from realtime.layers import get_channel_layer

logger = logging.getLogger(__name__)

EVENT_ACCOUNT_CHANGED = "account.changed"

LOGGED_OUT = "logged_out"
PASSWORD_CHANGED = "password_changed"
DEACTIVATED = "deactivated"
DELETED = "deleted"
STAFF_REMOVED = "staff_removed"

RECHECK_GRACE_SECONDS = 1.0


def account_group(user_id: Any) -> str:
    """The layer group every authenticated socket of one account joins."""
    return f"realtime.account.{user_id}"


def session_fingerprint(session_key: str | None) -> str | None:
    """A session key as it may travel over the layer (a hash: the key itself is a credential)."""
    if not session_key:
        return None
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]


async def close_account_sockets(user_id: Any, reason: str, session_key: str | None = None) -> None:
    """Tell every open socket of the account, in every process, to re-check its login."""
    layer = get_channel_layer()
    if layer is None:
        return
    message: dict[str, Any] = {"type": EVENT_ACCOUNT_CHANGED, "reason": reason}
    fingerprint = session_fingerprint(session_key)
    if fingerprint:
        message["session"] = fingerprint
    await layer.group_send(account_group(user_id), message)


def announce_account_change(user_id: Any, reason: str, session_key: str | None = None) -> None:
    """`close_account_sockets` from sync code, once the current transaction commits. Inside a
    running event loop (an async view) it is scheduled on that loop instead."""
    from django.db import transaction

    def send() -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        try:
            if loop is None:
                async_to_sync(close_account_sockets)(user_id, reason, session_key)
            else:
                task = loop.create_task(close_account_sockets(user_id, reason, session_key))
                _pending.add(task)
                task.add_done_callback(_pending.discard)
        except Exception:
            # The change itself is saved; sockets that miss it still fail their next re-check.
            logger.exception("could not tell the sockets of account %s (%s)", user_id, reason)

    transaction.on_commit(send)


_pending: set[asyncio.Task[None]] = set()


def session_user(session_key: str | None) -> Any:
    """The user the session `session_key` is logged in as now, checked as Django checks a
    request (session exists, auth hash current, user active), or an AnonymousUser."""
    from django.contrib.auth.models import AnonymousUser

    from realtime.auth import user_of_session

    if not session_key:
        return AnonymousUser()
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return user_of_session(store)


# --- Signals -----------------------------------------------------------------------------------

_WATCHED_FIELDS = ("password", "is_active", "is_staff")


def _on_logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    if user is None or getattr(user, "pk", None) is None:
        return
    session = getattr(request, "session", None)
    announce_account_change(user.pk, LOGGED_OUT, getattr(session, "session_key", None))


def _before_user_save(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    instance._realtime_account_was = None
    if instance.pk is None or kwargs.get("raw"):
        return
    if update_fields is not None and not set(update_fields) & set(_WATCHED_FIELDS):
        return  # e.g. last_login on every login: nothing that matters to open sockets
    stored = sender._default_manager.filter(pk=instance.pk).values(*_WATCHED_FIELDS).first()
    instance._realtime_account_was = stored


def _after_user_save(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    was = getattr(instance, "_realtime_account_was", None)
    instance._realtime_account_was = None
    if created or not was:
        return
    if was["is_active"] and not instance.is_active:
        reason = DEACTIVATED
    elif was["password"] != instance.password:
        reason = PASSWORD_CHANGED
    elif was["is_staff"] and not instance.is_staff:
        reason = STAFF_REMOVED
    else:
        return
    announce_account_change(instance.pk, reason)


def _after_user_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.pk is not None:
        announce_account_change(instance.pk, DELETED)


def connect_signals() -> None:
    """Connect the receivers that announce account changes (idempotent)."""
    from django.contrib.auth import get_user_model, user_logged_out
    from django.db.models.signals import post_delete, post_save, pre_save

    user_model = get_user_model()
    user_logged_out.connect(_on_logged_out, dispatch_uid="realtime.accounts.logged_out")
    pre_save.connect(_before_user_save, sender=user_model, dispatch_uid="realtime.accounts.pre")
    post_save.connect(_after_user_save, sender=user_model, dispatch_uid="realtime.accounts.post")
    post_delete.connect(
        _after_user_delete, sender=user_model, dispatch_uid="realtime.accounts.delete"
    )


__all__ = [
    "DEACTIVATED",
    "DELETED",
    "EVENT_ACCOUNT_CHANGED",
    "LOGGED_OUT",
    "PASSWORD_CHANGED",
    "RECHECK_GRACE_SECONDS",
    "STAFF_REMOVED",
    "account_group",
    "announce_account_change",
    "close_account_sockets",
    "connect_signals",
    "session_fingerprint",
    "session_user",
]
