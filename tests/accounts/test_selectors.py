"""Reads for users."""

from __future__ import annotations

import pytest

from accounts import selectors
from core.errors import UserNotFound

pytestmark = pytest.mark.django_db


def test_user_get_ignores_case(make_user):
    user = make_user("MiXeD")
    assert selectors.user_get(username="mixed") == user
    assert selectors.user_get(username="MIXED") == user


@pytest.mark.parametrize("name", ["a\x00b", "\ud800abc", "no spaces", "a" * 33, "", "é" * 5])
def test_impossible_names_are_not_found_without_a_query(django_assert_num_queries, name):
    """PostgreSQL refuses NUL in a query; such names are answered before one is made."""
    with django_assert_num_queries(0), pytest.raises(UserNotFound):
        selectors.user_get(username=name)


def test_user_list_sorts_ignoring_case(make_user):
    for name in ["bZ1", "Ba2", "abc"]:
        make_user(name)
    assert [u.username for u in selectors.user_list()] == ["abc", "Ba2", "bZ1"]
