"""Who others see online, and every online/offline transition.

The visibility rule: a user is online to others while they have at least one
open WebSocket and have not chosen to be invisible (status ``offline``);
invisible users still see their own choice. Each transition below announces
itself to every connection (the lobby group) after commit, and only when
others' view of the user changed. Open connections are counted in the
presence store (``realtime.presence_store``): this process's memory, or Redis.

The store also holds how others see each connected user (their name, or
nothing while invisible), which ``ready``'s ``online`` list is read from. A
connection records the status it read only if no status change began in the
meantime (the store's status epoch, read before the status); otherwise it
reads the status again. A status change bumps the epoch before its row
changes, hides an invisible user before the change commits and records the
new view after commit, so an invisible user is never left shown, even if the
store fails after the commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from accounts.selectors import user_list
from core.prepared import prepared_rows
from core.timestamps import format_timestamp
from realtime import frames
from realtime.envelopes import frame_envelope
from realtime.groups import LOBBY_GROUP
from realtime.presence_store import get_presence_store
from realtime.publish import broadcast_on_commit


def user_payload(user: Any, *, connected: bool, own: bool = False) -> dict[str, Any]:
    """A user as others see them, or (``own``) as they see themselves.

    ``connected``: the user has at least one open WebSocket.
    """
    is_online = connected and user.status != User.Status.OFFLINE
    payload = {
        "id": str(user.id),
        "username": user.username,
        "status": user.status if (own or is_online) else User.Status.OFFLINE,
        "is_online": is_online,
        "last_seen": format_timestamp(user.last_seen),
        "date_joined": format_timestamp(user.date_joined),
    }
    if own:
        payload["email"] = user.email
    return payload


# --- reads ------------------------------------------------------------------


def is_connected(user_id: UUID) -> bool:
    return bool(get_presence_store().connected([user_id]))


def connected_ids(users: Iterable[User]) -> set[UUID]:
    return get_presence_store().connected(user.id for user in users)


def online_users() -> QuerySet[User]:
    """Users others see online: connected and not invisible, sorted by name ignoring case."""
    connected = get_presence_store().all_connected()
    return user_list().filter(id__in=connected).exclude(status=User.Status.OFFLINE)


def online_usernames() -> Sequence[str]:
    """Every user others see online, sorted by name ignoring case: ``ready``'s ``online``, from the store."""
    return get_presence_store().online_names()


def visible_name(user: Any) -> str | None:
    """The name others see a connected user under, or None while they are invisible."""
    return None if user.status == User.Status.OFFLINE else user.username


def status_epoch() -> int:
    """Read before reading the status of a user whose connection then opens (``connection_opened``)."""
    return get_presence_store().status_epoch()


# --- transitions ------------------------------------------------------------


def presence_broadcast_on_commit(user_view: dict[str, Any]) -> None:
    """Tell every connection how a user now looks to others."""
    frame = frames.encode(frames.presence_frame(user_view))
    # Lossy: under pressure it goes first (the next change, or ``ready``, tells the truth again).
    broadcast_on_commit(LOBBY_GROUP, frame_envelope(frame, lossy=True))


# A connection whose status read keeps racing status changes gives up and counts as invisible.
STATUS_READS = 5


def connection_opened(*, user: User, connection_id: str, limit: int, epoch: int) -> bool:
    """Count a new connection; False past ``limit``. The first visible one announces the user online.

    ``epoch`` is the status epoch read before ``user`` was read: others see
    the user as that status says only if no status change began since; if one
    did, the status is read again (``user.status`` is updated).
    """
    store = get_presence_store()
    opened = store.open_as(user.id, connection_id, limit=limit, name=visible_name(user), epoch=epoch)
    if opened is None:
        return False
    shown = opened.shown
    for _ in range(STATUS_READS):
        if shown:
            break
        epoch = store.status_epoch()
        user.status = User.objects.filter(id=user.id).values_list("status", flat=True).first()
        shown = store.show(user.id, visible_name(user), epoch=epoch)
    if not shown:  # still racing status changes: hidden, the safe side, until the next one
        user.status = User.Status.OFFLINE
        store.status_changed(user.id, None)
    if opened.count == 1 and visible_name(user) is not None:
        presence_broadcast_on_commit(user_payload(user, connected=True))
    return True


def connections_reopened(*, user_ids: Iterable[UUID]) -> None:
    """Record again how others see users whose connections the store lost and got back (a Redis
    restart); until then they count as invisible."""
    left = set(user_ids)
    store = get_presence_store()
    for _ in range(STATUS_READS):
        if not left:
            return
        epoch = store.status_epoch()
        rows = User.objects.filter(id__in=left).values_list("id", "username", "status")
        for user_id, username, status in rows:
            if not store.show(user_id, None if status == User.Status.OFFLINE else username, epoch=epoch):
                break  # a status change began: read what is left again
            left.discard(user_id)
        else:
            return


def connection_closed(*, user_id: UUID, connection_id: str) -> None:
    """Forget a connection; the user's last one announces them offline."""
    if connection_forgotten(user_id=user_id, connection_id=connection_id):
        user_went_offline(user_id=user_id)


def connection_forgotten(*, user_id: UUID, connection_id: str) -> bool:
    """Forget a connection in the store; True when ``user_went_offline`` must follow: it was the
    user's last, and others saw the user (an invisible user's going changes nothing they see).

    What the store says others saw is what ``user_went_offline`` would read
    from the database, but for a status change caught between its commit and
    its record in the store: then either way the announcement races that
    change's own (``user_set_status`` decided before its commit whether to
    announce).
    """
    count, shown = get_presence_store().close_shown(user_id, connection_id)
    return count == 0 and shown


def forgets_in_process() -> bool:
    """Whether ``connection_forgotten`` may run on the event loop (the store does no I/O)."""
    return get_presence_store().in_process


def connections_swept() -> None:
    """Announce users whose every connection expired (their process died)."""
    for user_id in get_presence_store().sweep():
        user_went_offline(user_id=user_id)


def user_went_offline(*, user_id: UUID) -> None:
    """Record ``last_seen`` and tell everyone, unless the user was invisible anyway."""
    rows = prepared_rows(
        "accounts.user_status",
        lambda value: User.objects.filter(id=value).values_list("status"),
        field=User._meta.pk,
        value=user_id,
    )
    status = rows[0][0] if rows else None
    if status is None or status == User.Status.OFFLINE:
        return  # invisible (or deleted): others saw nothing come or go
    user = User.objects.get(id=user_id)
    user.last_seen = timezone.now()
    User.objects.filter(id=user_id).update(last_seen=user.last_seen)
    presence_broadcast_on_commit(user_payload(user, connected=False))


def user_set_status(*, user: User, status: str) -> User:
    """Choose online, away or offline (invisible); others hear of visible changes.

    The one path for a status change: the REST route and the admin call it.
    The presence store's epoch moves first (connections opening meanwhile
    read the status again), an invisible user is hidden in the store before
    the change commits and the new view recorded after it.
    """
    store = get_presence_store()
    store.status_changing()
    connected = is_connected(user.id)
    before = user_payload(user, connected=connected)
    with transaction.atomic():
        user.status = status
        if before["is_online"] and status == User.Status.OFFLINE:
            user.last_seen = timezone.now()  # others just saw them go offline
        user.save(update_fields=["status", "last_seen"])
        name = visible_name(user)
        if name is None:
            store.status_changed(user.id, None)
        transaction.on_commit(lambda: store.status_changed(user.id, name))
        after = user_payload(user, connected=connected)
        if (before["status"], before["is_online"]) != (after["status"], after["is_online"]):
            presence_broadcast_on_commit(after)
    return user
