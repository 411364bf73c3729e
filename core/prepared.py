"""Small look-ups on hot paths, compiled by the ORM once per database connection.

Compiling a queryset (``as_sql``: joins, lookups, converters) costs more
than running a look-up by key on SQLite or PostgreSQL; a WebSocket handshake
ran several. ``prepared_rows`` compiles the queryset the first time, keeps its
SQL and compiler on the thread's connection, and afterwards only executes the
SQL with the new key and converts the rows with the ORM's own converters, so
the values are exactly what the queryset would return.

On SQLite, Django's cursor rewrites every statement's ``%s`` placeholders to
``?`` with a regular expression on each execute: 5% of a handshake's CPU for
its long statements. ``fetch_all`` (and ``prepared_rows``) rewrite a statement
once and run it on a cursor that takes it as it is, still wrapped by Django
(error translation); while queries are logged or an ``execute_wrapper``
watches, they go Django's usual way, so the log shows them as written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX
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
    rows = _fetch_all(connection, sql, [param])
    if converters:
        return [tuple(row) for row in compiler.apply_converters(rows, converters)]
    return rows


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """``cursor.execute(sql, params)`` then ``fetchall()``; on SQLite the ``%s`` placeholders are
    rewritten once per statement rather than on every execute."""
    return _fetch_all(connections[DEFAULT_DB_ALIAS], sql, params)


@functools.lru_cache(maxsize=256)
def _qmark(sql: str) -> str:
    """What Django's SQLite cursor does to a statement with ``%s`` placeholders, once."""
    return FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")


def _fetch_all(connection: Any, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    if connection.vendor != "sqlite" or connection.queries_logged or connection.execute_wrappers:
        # Logged (DEBUG, tests capturing queries) or watched: Django's own path, whose log
        # and wrappers see the statement as written.
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    # Django's cursor wrapping (error translation) around a plain sqlite3 cursor instead of the
    # one that rewrites placeholders: the statement is rewritten already.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection._prepare_cursor(connection.connection.cursor())
    with cursor:
        cursor.execute(_qmark(sql), params)
        return cursor.fetchall()
