"""The process's own presence store: counts, limits, and how others see each connected user.

The Redis store's tests, against a real Redis, are in tests/scaleout/test_presence_redis.py.
"""

from __future__ import annotations

import uuid

from realtime.presence_store import LocalPresenceStore


def test_counts_limits_and_closes_one_or_many_connections():
    store = LocalPresenceStore()
    ada, bob = uuid.uuid4(), uuid.uuid4()
    assert store.open(ada, "a1", limit=2) == 1
    assert store.open(ada, "a1", limit=2) == 1  # the same connection again
    assert store.open(ada, "a2", limit=2) == 2
    assert store.open(ada, "a3", limit=2) is None
    assert store.open(bob, "b1", limit=0) is None
    assert store.connected([ada, bob]) == {ada}
    assert store.close(ada, "a1") == 1
    assert store.close(ada, "zz") == 1  # not one of hers
    assert store.open(ada, "a3", limit=2) == 2
    assert store.close(ada, "a2") == 1
    assert store.close(ada, "a3") == 0
    assert store.close(ada, "a3") == 0
    assert store.all_connected() == set()


def test_online_names_are_the_connected_users_others_see_sorted_ignoring_case():
    store = LocalPresenceStore()
    ada, bob, cy = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    epoch = store.status_epoch()
    store.open_as(bob, "b1", limit=10, name="bob", epoch=epoch)
    store.open_as(ada, "a1", limit=10, name="Ada", epoch=epoch)
    store.open_as(cy, "c1", limit=10, name=None, epoch=epoch)  # invisible
    assert store.online_names() == ("Ada", "bob")
    store.status_changing()
    store.status_changed(cy, "cy")
    store.status_changed(bob, None)
    assert store.online_names() == ("Ada", "cy")
    assert store.close_shown(cy, "c1") == (0, True)
    assert store.close_shown(bob, "b1") == (0, False)
    assert store.online_names() == ("Ada",)
    store.status_changed(bob, "bob")  # not connected: not listed
    assert store.online_names() == ("Ada",)


def test_a_visibility_read_before_a_status_change_began_is_not_recorded():
    store = LocalPresenceStore()
    ada = uuid.uuid4()
    epoch = store.status_epoch()  # then ada's status is read: visible
    store.status_changing()  # ... while it changes to invisible
    store.status_changed(ada, None)
    opened = store.open_as(ada, "a1", limit=10, name="ada", epoch=epoch)
    assert (opened.count, opened.shown) == (1, False)
    assert store.online_names() == ()
    assert not store.show(ada, "ada", epoch=epoch)
    assert store.show(ada, None, epoch=store.status_epoch())
    assert store.online_names() == ()
