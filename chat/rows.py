"""Model instances from rows read with plain SQL, as the ORM would have made them.

The statements every connect and every history page runs (the room with the reader's marker,
the latest page of messages with the messages they answer, their reactions and attachments) are
cheap for the database and expensive for the ORM to build: building the queries cost more than
answering them (bench/README.md, "Round 3"). `chat.services` writes those statements by hand;
this module turns their rows into instances: the same field values (each column converted as the
ORM converts it on this database, e.g. SQLite's datetimes), `_state` set as for a loaded row.

    table = Columns.of(Message)                       # every concrete field, in model order
    sql = f"SELECT {table.select('m')} FROM {table.table} m WHERE ..."
    message = table.instance(row)                     # row[:len(table)] are those columns

Only for the read paths that measured slow; everything else uses the ORM.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.db import connection, models


@dataclass(frozen=True)
class Columns:
    """Some concrete fields of `model`, in order: their SQL names and how to convert values."""

    model: type[models.Model]
    fields: tuple[Any, ...]
    attnames: tuple[str, ...]
    columns: tuple[str, ...]  # quoted column names
    table: str  # quoted table name
    converters: tuple[tuple[int, Any, tuple[Any, ...]], ...]  # (index, field, converters)

    @staticmethod
    def of(model: type[models.Model], *names: str) -> Columns:
        """The fields named (attribute or field names; none: every concrete field) of `model`
        on the default database."""
        return _columns(model, names, connection.vendor)

    def __len__(self) -> int:
        return len(self.fields)

    def select(self, alias: str) -> str:
        """The columns as a SELECT list, qualified with the table's `alias`."""
        return ", ".join(f"{alias}.{column}" for column in self.columns)

    def instance(self, row: Any, offset: int = 0) -> Any:
        """An instance from `row[offset:offset + len(self)]` (fields not read are deferred)."""
        values = list(row[offset : offset + len(self.fields)])
        for index, field, convert in self.converters:
            if values[index] is not None:
                for converter in convert:
                    values[index] = converter(values[index], field, connection)
        return self.model.from_db(connection.alias, self.attnames, values)


@functools.cache
def _columns(model: type[models.Model], names: tuple[str, ...], vendor: str) -> Columns:
    meta = model._meta
    fields = tuple(meta.get_field(name) for name in names) if names else tuple(meta.concrete_fields)
    quote = connection.ops.quote_name
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(meta.db_table)
        convert = (*connection.ops.get_db_converters(column), *field.get_db_converters(connection))
        if convert:
            converters.append((index, field, convert))
    return Columns(
        model=model,
        fields=fields,
        attnames=tuple(field.attname for field in fields),
        columns=tuple(quote(field.column) for field in fields),
        table=quote(meta.db_table),
        converters=tuple(converters),
    )


__all__ = ["Columns"]
