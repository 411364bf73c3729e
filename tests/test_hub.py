"""The process's hub: local subscribers per group, one layer membership per group."""

from __future__ import annotations

from realtime.hub import Hub
from realtime.layers import LocalChannelLayer
from tests.hub_subscribers import RecordingSubscriber


async def test_a_group_of_one_or_many_reaches_each_member_once_and_is_left_when_empty():
    layer = LocalChannelLayer()
    hub = Hub(layer)
    await hub.start()
    a, b = RecordingSubscriber(), RecordingSubscriber()
    await hub.join("chat.u.x", a)
    await hub.join("chat.u.x", a)  # again: still once
    assert hub.members["chat.u.x"] is a  # alone: kept as itself, no set
    hub.dispatch({"group": "chat.u.x", "kind": "frame", "n": 1})
    await hub.join("chat.u.x", b)
    assert hub.members["chat.u.x"] == {a, b}
    hub.dispatch({"group": "chat.u.x", "kind": "frame", "n": 2})
    assert hub.subscribers() == {a, b}
    await hub.leave("chat.u.x", a)
    assert hub.members["chat.u.x"] is b
    await hub.leave("chat.u.x", a)  # not a member any more: nothing changes
    hub.dispatch({"group": "chat.u.x", "kind": "frame", "n": 3})
    assert [e["n"] for e in a.events] == [1, 2]
    assert [e["n"] for e in b.events] == [2, 3]
    assert "chat.u.x" in layer.groups
    await hub.leave_all(["chat.u.x"], b)
    assert hub.members == {} and hub.subscribers() == set()
    assert "chat.u.x" not in layer.groups  # the process left the layer group
    hub._receiver.cancel()
