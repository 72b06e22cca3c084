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
from django.db.models.expressions import Col
from django.db.models.manager import BaseManager

_PLAIN_BACKENDS = (ModelBackend, AllowAllUsersModelBackend)

# (model, database alias) -> (SQL, field attnames, (converter, column) pairs per column)
_statements: dict[tuple[type, str], tuple[str, list[str], list[list[Any]]]] = {}


def _has_plain_manager(model: type[Model]) -> bool:
    manager = model._default_manager
    return (
        type(manager).get_queryset is BaseManager.get_queryset
        and manager._queryset_class is QuerySet
    )


def _statement(model: type[Model], alias: str) -> tuple[str, list[str], list[list[Any]]]:
    """The SELECT of a user row by primary key, and how to turn its columns into field values."""
    key = (model, alias)
    cached = _statements.get(key)
    if cached is None:
        connection = connections[alias]
        quote = connection.ops.quote_name
        meta = model._meta
        fields = list(meta.concrete_fields)
        converters = []
        for field in fields:
            column = Col(meta.db_table, field)
            converters.append(
                [
                    (converter, column)
                    for converter in connection.ops.get_db_converters(column)
                    + field.get_db_converters(connection)
                ]
            )
        sql = (
            f"SELECT {', '.join(quote(f.column) for f in fields)} FROM {quote(meta.db_table)} "
            f"WHERE {quote(meta.pk.column)} = %s"
        )
        cached = _statements[key] = (sql, [f.attname for f in fields], converters)
    return cached


def read_user(user_id: Any) -> Any:
    """The user with primary key `user_id` (already of the key's type), or None."""
    model = get_user_model()
    alias = router.db_for_read(model)
    sql, attnames, converters = _statement(model, alias)
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(sql, [model._meta.pk.get_db_prep_value(user_id, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for value, column_converters in zip(row, converters, strict=True):
        for converter, column in column_converters:
            value = converter(value, column, connection)
        values.append(value)
    return model.from_db(alias, attnames, values)


def backend_user(backend: Any, user_id: Any) -> Any:
    """What ``backend.get_user(user_id)`` returns, with one plain statement for Django's model
    backends (see the module docstring)."""
    if type(backend) not in _PLAIN_BACKENDS or not _has_plain_manager(get_user_model()):
        return backend.get_user(user_id)
    user = read_user(user_id)
    return user if user is not None and backend.user_can_authenticate(user) else None


__all__ = ["backend_user", "read_user"]
