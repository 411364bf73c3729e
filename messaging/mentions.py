"""``@username`` mentions: parsed on every send and edit, stored one row per user named.

A mention is ``@`` followed by the longest run of username characters, matched
ignoring case against the users who can read the channel (its members; for
the lobby, every active user), the author included. When the run names no such
user and ends in ``.``, ``-`` or ``_``, those are dropped and the rest tried
(``thanks @bob.`` names bob). At most ``MENTIONS_MAX``: the first named.
"""

from __future__ import annotations

import re
from typing import TypeVar
from uuid import UUID

from accounts.models import User
from chatrooms.models import Membership
from messaging.models import Mention, Message

MENTIONS_MAX = 50
_RUN = re.compile(r"@([A-Za-z0-9_.-]+)")
_TRAILING = ".-_"
Reader = TypeVar("Reader")


def _candidates(content: str) -> list[tuple[str, str]]:
    """Each ``@`` run in order: (the run, the run without trailing ``.-_``), lowercased."""
    runs = [match.group(1).lower() for match in _RUN.finditer(content)]
    return [(run, run.rstrip(_TRAILING)) for run in runs]


def _readers_named(names: set[str], *, channel_id) -> dict[str, User]:
    """The readers of the channel (None: the lobby) among users with these names (lowercased)."""
    users = User.objects.filter(username__lower__in=names)
    if channel_id is None:
        users = users.filter(is_active=True)
    else:
        users = users.filter(id__in=Membership.objects.filter(channel_id=channel_id).values("user_id"))
    return {user.username.lower(): user for user in users.only("id", "username")}


def _pick(candidates: list[tuple[str, str]], readers: dict[str, Reader]) -> list[Reader]:
    """The readers the ``@`` runs name (by lowercased name), in the order first named, at most
    ``MENTIONS_MAX``."""
    named: dict[str, Reader] = {}
    for run, stripped in candidates:
        name = run if run in readers else stripped  # keys are the readers' names, lowercased
        reader = readers.get(name)
        if reader is not None and name not in named:
            named[name] = reader
            if len(named) == MENTIONS_MAX:
                break
    return list(named.values())


def _names(candidates: list[tuple[str, str]]) -> set[str]:
    return {name for pair in candidates for name in pair if name}


def mentioned_users(content: str, *, channel_id) -> list[User]:
    """The users ``content`` mentions, in the order first named, at most ``MENTIONS_MAX``."""
    candidates = _candidates(content)
    if not candidates:
        return []
    return _pick(candidates, _readers_named(_names(candidates), channel_id=channel_id))


def mentions_find(messages: list[tuple[str, UUID | None]]) -> list[list[tuple[UUID, str]]]:
    """For each ``(content, channel id)`` of a batch of new messages, the ``(id, username)`` of
    each user it mentions, as ``mentioned_users`` finds them: at most two queries for the batch
    (the channels' readers, the lobby's), none when no content has an ``@``."""
    found: list[list[tuple[UUID, str]]] = [[] for _ in messages]
    wanted = [
        (index, candidates, channel_id)
        for index, (content, channel_id) in enumerate(messages)
        if "@" in content and (candidates := _candidates(content))
    ]
    if not wanted:
        return found
    names = set().union(*(_names(candidates) for _, candidates, _ in wanted))
    readers: dict[UUID | None, dict[str, tuple[UUID, str]]] = {}
    channel_ids = {channel_id for _, _, channel_id in wanted if channel_id is not None}
    if channel_ids:
        rows = Membership.objects.filter(channel_id__in=channel_ids, user__username__lower__in=names)
        for channel_id, user_id, username in rows.values_list("channel_id", "user_id", "user__username"):
            readers.setdefault(channel_id, {})[username.lower()] = (user_id, username)
    if any(channel_id is None for _, _, channel_id in wanted):
        rows = User.objects.filter(username__lower__in=names, is_active=True).values_list("id", "username")
        readers[None] = {username.lower(): (user_id, username) for user_id, username in rows}
    for index, candidates, channel_id in wanted:
        found[index] = _pick(candidates, readers.get(channel_id, {}))
    return found


def mentions_insert(rows: list[tuple[UUID, UUID]]) -> None:
    """Store the ``(message id, user id)`` mention rows of a batch of new messages: one INSERT."""
    if rows:
        Mention.objects.bulk_create([Mention(message_id=message, user_id=user) for message, user in rows])


def mentions_store(message: Message, users: list[User], *, replace: bool = True) -> list[str]:
    """Store ``message``'s mention rows (``replace``: instead of its old ones); return the names, sorted."""
    if replace:
        Mention.objects.filter(message=message).delete()
    if users:
        Mention.objects.bulk_create([Mention(message=message, user=user) for user in users])
    return sorted((user.username for user in users), key=str.lower)
