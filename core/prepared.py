"""Small look-ups on hot paths, compiled by the ORM once per database connection.

Compiling a queryset (``as_sql``: joins, lookups, converters) costs more
than running a look-up by key on SQLite or PostgreSQL; a WebSocket handshake
ran several. ``prepared_rows`` compiles the queryset the first time, keeps its
SQL and compiler on the thread's connection, and afterwards only executes the
SQL with the new key and converts the rows with the ORM's own converters, so
the values are exactly what the queryset would return.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, QuerySet

_CACHE_ATTRIBUTE = "_chat_prepared_queries"


def prepared_rows(
    name: str, build: Callable[[Any], QuerySet], *, field: Field, value: Any
) -> list[tuple[Any, ...]]:
    """The rows of ``build(value)``, a ``values_list`` queryset whose only parameter is ``value``
    compared with ``field``, compiled once per connection under ``name``."""
    connection = connections[DEFAULT_DB_ALIAS]
    param = field.get_db_prep_value(value, connection)
    cache = connection.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
    prepared = cache.get(name)
    if prepared is None:
        compiler = build(value).query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        if list(params) != [param]:
            raise AssertionError(f"{name}: expected the one parameter {param!r}, got {params!r}")
        converters = compiler.get_converters([column[0] for column in compiler.select[: compiler.col_count]])
        prepared = cache[name] = (sql, compiler, converters)
    sql, compiler, converters = prepared
    with connection.cursor() as cursor:
        cursor.execute(sql, [param])
        rows = cursor.fetchall()
    if converters:
        return [tuple(row) for row in compiler.apply_converters(rows, converters)]
    return rows
