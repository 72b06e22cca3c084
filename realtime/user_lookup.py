"""The user a session names, read with one plain statement when Django's model backend is used.

Every authenticated socket's connect reads its user, so a reconnect storm reads thousands at
once. ``ModelBackend.get_user`` is ``UserModel._default_manager.get(pk=user_id)``, and building
that query cost the ORM several times what the database took to answer it (bench/README.md,
"Round 1: where a connect's milliseconds went"). `backend_user` gives the same answer for Django's
``ModelBackend`` and ``AllowAllUsersModelBackend``: the same row, turned into a model instance by
the same converters the ORM applies (``Model.from_db``), and the backend's own
``user_can_authenticate`` check. Any other backend, or a user model whose default manager is not
a plain manager (it may filter or change ``get``), is asked as Django asks it:
``backend.get_user(user_id)``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import AllowAllUsersModelBackend, ModelBackend
from django.db import connections, router
from django.db.models import Model, QuerySet
from django.db.models.manager import BaseManager

from realtime.rows import Columns

_PLAIN_BACKENDS = (ModelBackend, AllowAllUsersModelBackend)


def _has_plain_manager(model: type[Model]) -> bool:
    manager = model._default_manager
    return (
        type(manager).get_queryset is BaseManager.get_queryset
        and manager._queryset_class is QuerySet
    )


def read_user(user_id: Any) -> Any:
    """The user with primary key `user_id` (already of the key's type), or None."""
    model = get_user_model()
    alias = router.db_for_read(model)
    users = Columns.of(model, using=alias)
    connection = connections[alias]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {users.select('u')} FROM {users.table} u "
            f"WHERE u.{quote(model._meta.pk.column)} = %s",
            [model._meta.pk.get_db_prep_value(user_id, connection)],
        )
        row = cursor.fetchone()
    return None if row is None else users.instance(row)


def backend_user(backend: Any, user_id: Any) -> Any:
    """What ``backend.get_user(user_id)`` returns, with one plain statement for Django's model
    backends (see the module docstring)."""
    if type(backend) not in _PLAIN_BACKENDS or not _has_plain_manager(get_user_model()):
        return backend.get_user(user_id)
    user = read_user(user_id)
    return user if user is not None and backend.user_can_authenticate(user) else None


__all__ = ["backend_user", "read_user"]
