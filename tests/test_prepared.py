"""core.prepared: look-ups compiled once give what their querysets give, logged or not."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import LoginSession, User
from core.prepared import fetch_all, prepared_rows

pytestmark = pytest.mark.django_db

FIELDS = ("id", "username", "is_active", "date_joined", "last_seen", "status")


def _rows(user_id):
    return prepared_rows(
        "tests.user_row",
        lambda value: User.objects.filter(id=value).values_list(*FIELDS),
        field=User._meta.pk,
        value=user_id,
    )


def test_prepared_rows_are_the_querysets_rows_whether_queries_are_logged_or_not(alice, bob):
    LoginSession.objects.create(user=alice)
    for user in (alice, bob, alice):  # compiled on the first, run again on the others
        expected = list(User.objects.filter(id=user.id).values_list(*FIELDS))
        assert _rows(user.id) == expected
        with CaptureQueriesContext(connection) as logged:
            assert _rows(user.id) == expected
        assert len(logged) == 1 and "%s" not in logged[0]["sql"]
    assert _rows(LoginSession.objects.get().id) == []  # no such user


def test_fetch_all_runs_a_statement_with_placeholders_and_literal_percent_signs(alice):
    table = User._meta.db_table
    sql = f"SELECT username, %s FROM {table} WHERE username LIKE %s AND username LIKE 'a%%'"  # noqa: S608
    assert fetch_all(sql, ["x", "ali%"]) == [("alice", "x")]
    with CaptureQueriesContext(connection) as logged:
        assert fetch_all(sql, ["y", "ali%"]) == [("alice", "y")]
    assert len(logged) == 1
