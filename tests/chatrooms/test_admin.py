"""The channel admin reaches every kind, shows bans, and deletes through ``channel_remove`` (audited)."""

from __future__ import annotations

import pytest

from accounts.models import AuditRecord
from chatrooms import bans, direct, services
from chatrooms.models import Channel
from realtime.groups import channel_group

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/chatrooms/channel/"


@pytest.fixture
def kinds(alice, bob):
    services.channel_create(user=alice, name="open")
    services.channel_create(user=alice, name="hush", private=True)
    direct.direct_open(user=alice, username="bob")


def test_the_list_shows_every_kind_with_a_filter(admin_client, kinds):
    page = admin_client.get(CHANGELIST)
    assert page.status_code == 200
    shown = {channel.name for channel in page.context["cl"].result_list}
    assert shown == {"open", "hush", "@alice+bob"}
    assert b"kind" in page.content.lower()
    private = admin_client.get(f"{CHANGELIST}?kind__exact=private")
    assert [channel.name for channel in private.context["cl"].result_list] == ["hush"]
    direct_only = admin_client.get(f"{CHANGELIST}?kind__exact=direct")
    assert [channel.name for channel in direct_only.context["cl"].result_list] == ["@alice+bob"]


def test_the_change_page_shows_bans_read_only(admin_client, kinds, alice, make_user):
    make_user("spammer")
    bans.ban_add(actor=alice, name="hush", username="spammer", reason="links everywhere")
    channel = Channel.objects.get(name="hush")
    page = admin_client.get(f"{CHANGELIST}{channel.id}/change/")
    assert page.status_code == 200
    assert b"links everywhere" in page.content
    assert b"spammer" in page.content
    assert "kind" not in page.context["adminform"].form.fields


@pytest.mark.parametrize("name", ["hush", "@alice+bob"])
def test_deleting_in_the_admin_is_announced_and_audited(admin_client, kinds, published, name):
    channel = Channel.objects.get(name=name)
    with published.capture():
        response = admin_client.post(f"{CHANGELIST}{channel.id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Channel.objects.filter(name=name).exists()
    assert [group for group, _ in published.calls] == [channel_group(channel.id)]
    assert published.calls[0][1]["kind"] == "channel_deleted"
    assert list(AuditRecord.objects.values_list("actor", "action", "target")) == [
        ("moderator", "channel_deleted", f"channel {name}")
    ]


def test_bulk_delete_in_the_admin_is_audited_per_channel(admin_client, kinds):
    ids = [str(pk) for pk in Channel.objects.values_list("id", flat=True)]
    response = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )
    assert response.status_code == 302
    assert not Channel.objects.exists()
    assert AuditRecord.objects.filter(action="channel_deleted").count() == 3
