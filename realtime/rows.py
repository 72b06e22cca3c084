"""Model instances from rows read with plain SQL, as the ORM would have made them.

Some statements run on every connect or every page of history (the session's user; the room with
the reader's marker; the latest messages, the messages they answer, their reactions and
attachments) and are cheap for the database but expensive for the ORM to build: building the
queries cost more than answering them (bench/README.md, "Round 1" and "Round 3"). Their callers
write the SQL by hand; `Columns` names the columns to select and turns a row back into an
instance: the same field values (each column converted as the ORM converts it on that database,
e.g. SQLite's datetimes) and ``_state`` set as for a loaded row::

    table = Columns.of(Message)                       # every concrete field, in model order
    sql = f"SELECT {table.select('m')} FROM {table.table} m WHERE ..."
    message = table.instance(row)                     # row[:len(table)] are those columns

Only for the read paths that measured slow; everything else uses the ORM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models.expressions import Col


@dataclass(frozen=True)
class Columns:
    """Some concrete fields of `model` on the database `alias`, in order: their SQL names and how
    to convert what the cursor returns for each."""

    model: type[models.Model]
    alias: str
    attnames: tuple[str, ...]
    columns: tuple[str, ...]  # quoted column names
    table: str  # quoted table name
    converters: tuple[tuple[int, Col, tuple[Any, ...]], ...]  # (index, column, converters)

    @staticmethod
    def of(model: type[models.Model], *names: str, using: str = DEFAULT_DB_ALIAS) -> Columns:
        """The fields named (none: every concrete field, in model order) of `model` on the
        database `using`."""
        key = (model, names, using, connections[using].vendor)  # a test may repoint an alias
        found = _cache.get(key)
        if found is None:
            found = _cache[key] = _columns(model, names, using)
        return found

    def __len__(self) -> int:
        return len(self.attnames)

    def select(self, alias: str) -> str:
        """The columns as a SELECT list, qualified with the table's `alias`."""
        return ", ".join(f"{alias}.{column}" for column in self.columns)

    def instance(self, row: Any, offset: int = 0) -> Any:
        """An instance from `row[offset:offset + len(self)]` (fields not read are deferred)."""
        connection = connections[self.alias]
        values = list(row[offset : offset + len(self.attnames)])
        for index, column, convert in self.converters:
            if values[index] is not None:
                for converter in convert:
                    values[index] = converter(values[index], column, connection)
        return self.model.from_db(self.alias, self.attnames, values)


_cache: dict[tuple[type[models.Model], tuple[str, ...], str, str], Columns] = {}


def _columns(model: type[models.Model], names: tuple[str, ...], alias: str) -> Columns:
    connection = connections[alias]
    meta = model._meta
    fields = [meta.get_field(name) for name in names] if names else list(meta.concrete_fields)
    quote = connection.ops.quote_name
    converters = []
    for index, field in enumerate(fields):
        column = Col(meta.db_table, field)
        convert = (*connection.ops.get_db_converters(column), *field.get_db_converters(connection))
        if convert:
            converters.append((index, column, convert))
    return Columns(
        model=model,
        alias=alias,
        attnames=tuple(field.attname for field in fields),
        columns=tuple(quote(field.column) for field in fields),
        table=quote(meta.db_table),
        converters=tuple(converters),
    )


__all__ = ["Columns"]
